package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// Database is one fresh database, owned by OwnerRole.
type Database struct {
	Name string
	// SuperDSN connects as the cluster's superuser (inspection, pg_dump).
	SuperDSN string
	// OwnerDSN connects as the owner: it runs migrations and owns tables.
	OwnerDSN string
	// AppDSN connects as blackbox_app, the gateway's role.
	AppDSN string
	// DSN is the store DSN a production node uses: blackbox_app, with
	// migrations run as the owner (migrate_as, migrate_password).
	DSN string

	srv *Server
}

// NewDatabase creates a database owned by OwnerRole.
func (s *Server) NewDatabase(ctx context.Context) (*Database, error) {
	s.mu.Lock()
	s.seq++
	name := "bbtest_" + strconv.Itoa(s.seq)
	s.mu.Unlock()
	if err := s.superExec(ctx, "postgres", fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, name, OwnerRole)); err != nil {
		return nil, err
	}
	d := &Database{Name: name, srv: s, SuperDSN: s.dsn(SuperRole, name), OwnerDSN: s.dsn(OwnerRole, name), AppDSN: s.dsn(AppRole, name)}
	u, err := url.Parse(d.AppDSN)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	q := u.Query()
	q.Set("migrate_as", OwnerRole)
	q.Set("migrate_password", s.pw[OwnerRole])
	u.RawQuery = q.Encode()
	d.DSN = u.String()
	return d, nil
}

// Drop removes the database, closing any connection still open to it.
func (d *Database) Drop(ctx context.Context) error {
	return d.srv.superExec(ctx, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, d.Name))
}

// Server is the cluster the database lives in.
func (d *Database) Server() *Server { return d.srv }

// Dump returns pg_dump's plain-SQL dump of the whole database (schema and
// data), taken as the superuser so row security hides nothing.
func (d *Database) Dump(ctx context.Context) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.srv.bin, "pg_dump"),
		"--host", "127.0.0.1", "--port", strconv.Itoa(d.srv.port), "--username", SuperRole,
		"--no-password", "--format", "plain", d.Name)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+d.srv.pw[SuperRole], "PGSSLMODE=disable")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pgtest: pg_dump %s: %w: %s", d.Name, err, errb.String())
	}
	return out.Bytes(), nil
}
