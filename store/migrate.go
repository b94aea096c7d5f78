package store

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// migration is one versioned schema step, embedded in the binary.
type migration struct {
	version int
	name    string
	sql     string
}

// readMigrations loads NNNN_name.sql files from dir.
func readMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// SchemaVersion is the newest migration this binary carries for the backend.
func (db *DB) SchemaVersion() (int, error) {
	ms, err := db.b.migrations()
	if err != nil || len(ms) == 0 {
		return 0, err
	}
	return ms[len(ms)-1].version, nil
}

// migrationLocker is a backend where several processes may migrate one
// database at once (Postgres nodes starting together): the statement it
// returns opens every migration transaction and holds them off each other.
type migrationLocker interface {
	migrationLock() string
}

// migrate applies every step newer than the database's version, each in its
// own transaction, and refuses a database migrated by a newer binary. A
// database already at this binary's version is only read, so a role without
// DDL rights can start once the owner has migrated.
func migrate(ctx context.Context, b backend) error {
	steps, err := b.migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	latest := int64(0)
	if len(steps) > 0 {
		latest = int64(steps[len(steps)-1].version)
	}
	var current int64
	// An error here (no table yet) leaves the verdict to the steps below.
	if b.tx(ctx, txScope{system: true}, false, func(q querier) error {
		return q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current)
	}) == nil {
		if err := checkNotNewer(current, latest); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if current == latest {
			return nil
		}
	}
	lock := ""
	if l, ok := b.(migrationLocker); ok {
		lock = l.migrationLock()
	}
	begin := func(q querier) error {
		if lock == "" {
			return nil
		}
		_, err := q.Exec(ctx, lock)
		return err
	}
	err = b.tx(ctx, txScope{system: true}, true, func(q querier) error {
		if err := begin(q); err != nil {
			return err
		}
		_, err := q.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version BIGINT PRIMARY KEY,
			name TEXT NOT NULL,
			applied_at BIGINT NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for {
		applied := false
		err := b.tx(ctx, txScope{system: true}, true, func(q querier) error {
			if err := begin(q); err != nil {
				return err
			}
			if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return err
			}
			if err := checkNotNewer(current, latest); err != nil {
				return err
			}
			for _, m := range steps {
				if int64(m.version) <= current {
					continue
				}
				if _, err := q.Exec(ctx, m.sql); err != nil {
					return fmt.Errorf("apply %s: %w", m.name, err)
				}
				if _, err := q.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
					m.version, m.name, time.Now().UnixMilli()); err != nil {
					return fmt.Errorf("record %s: %w", m.name, err)
				}
				applied = true
				return nil // one step per transaction
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if !applied {
			return nil
		}
	}
}

func checkNotNewer(current, latest int64) error {
	if current > latest {
		return fmt.Errorf("%w: database is at version %d, this binary knows up to %d; upgrade blackbox",
			ErrSchemaTooNew, current, latest)
	}
	return nil
}
