package pgtest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blackbox-gw/blackbox/store/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func TestRolesAreProductionShaped(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	su := connect(t, db.SuperDSN)
	for _, role := range []string{pgtest.OwnerRole, pgtest.AppRole} {
		var super, bypass bool
		if err := su.QueryRow(ctx, `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1`, role).Scan(&super, &bypass); err != nil {
			t.Fatalf("role %s: %v", role, err)
		}
		if super || bypass {
			t.Fatalf("role %s: superuser=%v bypassrls=%v; want neither", role, super, bypass)
		}
	}
	var owner string
	if err := su.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1`, db.Name).Scan(&owner); err != nil || owner != pgtest.OwnerRole {
		t.Fatalf("database owner %q %v", owner, err)
	}
	// The owner can create tables; the app role cannot.
	if _, err := connect(t, db.OwnerDSN).Exec(ctx, `CREATE TABLE t (x int)`); err != nil {
		t.Fatalf("owner create table: %v", err)
	}
	if _, err := connect(t, db.AppDSN).Exec(ctx, `CREATE TABLE u (x int)`); err == nil {
		t.Fatal("blackbox_app created a table")
	}
	var who string
	if err := connect(t, db.AppDSN).QueryRow(ctx, `SELECT current_user`).Scan(&who); err != nil || who != pgtest.AppRole {
		t.Fatalf("app DSN connects as %q %v", who, err)
	}
}

func TestFreshDatabasePerTest(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.New(t), pgtest.New(t)
	if a.Name == b.Name || a.Server() != b.Server() {
		t.Fatalf("want two databases on the shared server: %s %s", a.Name, b.Name)
	}
	if _, err := connect(t, a.OwnerDSN).Exec(ctx, `CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := connect(t, b.OwnerDSN).QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database b sees a's table: %d %v", n, err)
	}
}

func TestDumpHoldsData(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	conn := connect(t, db.OwnerDSN)
	if _, err := conn.Exec(ctx, `CREATE TABLE notes (body text); INSERT INTO notes VALUES ('needle-4711')`); err != nil {
		t.Fatal(err)
	}
	dump, err := db.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dump, []byte("needle-4711")) || !bytes.Contains(dump, []byte("CREATE TABLE public.notes")) {
		t.Fatalf("dump lacks the table or its row:\n%s", dump)
	}
}

func TestDropClosesConnections(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	conn, err := pgx.Connect(ctx, db.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := db.Drop(ctx); err != nil {
		t.Fatalf("drop with an open connection: %v", err)
	}
	if _, err := pgx.Connect(ctx, db.AppDSN); err == nil {
		t.Fatal("database still accepts connections after Drop")
	}
}

func TestStopRemovesEverything(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := pgtest.Start(ctx, pgtest.Options{Logf: t.Logf})
	if errors.Is(err, pgtest.ErrNoBinaries) {
		t.Skipf("SKIPPING: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	db, err := srv.NewDatabase(ctx)
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.SocketDir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cluster dir left behind: %v", err)
	}
	if _, err := pgx.Connect(ctx, db.SuperDSN); err == nil {
		t.Fatal("server still answers after Stop")
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
