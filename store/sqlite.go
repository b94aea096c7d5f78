package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

// sqliteBackend keeps one writer connection (SQLite serialises writers
// anyway; one connection with BEGIN IMMEDIATE avoids lock-upgrade deadlocks)
// and a pool of readers, which WAL lets run beside the writer. The CLI and
// the server may share the file: busy_timeout makes them wait, not fail.
type sqliteBackend struct {
	path   string
	writer *sql.DB
	reader *sql.DB

	stopCheckpoints context.CancelFunc
	checkpointsDone chan struct{}
}

// checkpointEvery is how often WAL frames are copied back into the
// database file. Commits never checkpoint themselves (wal_autocheckpoint=0
// on the writer): an automatic checkpoint fsyncs on whichever commit
// triggers it, which is what set the policy decision's p99.
const checkpointEvery = time.Second

func openSQLite(ctx context.Context, path string) (*sqliteBackend, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	pragmas := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(ON)", "synchronous(NORMAL)", "wal_autocheckpoint(0)"} {
		pragmas.Add("_pragma", p)
	}
	open := func(txlock string, conns int) (*sql.DB, error) {
		q := url.Values{}
		for k, v := range pragmas {
			q[k] = v
		}
		q.Set("_txlock", txlock)
		db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(conns)
		db.SetMaxIdleConns(conns)
		return db, nil
	}
	w, err := open("immediate", 1)
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	r, err := open("deferred", 8)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	b := &sqliteBackend{path: path, writer: w, reader: r, checkpointsDone: make(chan struct{})}
	var cctx context.Context
	cctx, b.stopCheckpoints = context.WithCancel(context.Background())
	go b.checkpoints(cctx)
	return b, nil
}

// checkpoints runs passive WAL checkpoints beside the writer (on a reader
// connection: a passive checkpoint never waits for, nor blocks, writers).
func (b *sqliteBackend) checkpoints(ctx context.Context) {
	defer close(b.checkpointsDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := b.reader.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil && ctx.Err() == nil {
				slog.Debug("sqlite checkpoint", "path", b.path, "error", err)
			}
		}
	}
}

func (b *sqliteBackend) name() string { return "sqlite" }

func (b *sqliteBackend) close() error {
	b.stopCheckpoints()
	<-b.checkpointsDone
	// Leave a compact file behind: everything in the database, the WAL empty.
	_, cerr := b.writer.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	if cerr != nil && strings.Contains(cerr.Error(), "locked") {
		cerr = nil // another process holds it; its own close checkpoints
	}
	return errors.Join(cerr, b.reader.Close(), b.writer.Close())
}

func (b *sqliteBackend) migrations() ([]migration, error) {
	return readMigrations(sqliteMigrations, "migrations/sqlite")
}

func (b *sqliteBackend) tx(ctx context.Context, _ txScope, write bool, fn func(q querier) error) error {
	pool := b.reader
	if write {
		pool = b.writer
	}
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return mapSQLiteErr(err)
	}
	if err := fn(sqliteTx{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return mapSQLiteErr(tx.Commit())
}

type sqliteTx struct{ tx *sql.Tx }

func (t sqliteTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, mapSQLiteErr(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (t sqliteTx) Query(ctx context.Context, q string, args ...any) (rows, error) {
	rs, err := t.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapSQLiteErr(err)
	}
	return sqliteRows{rs}, nil
}

func (t sqliteTx) QueryRow(ctx context.Context, q string, args ...any) row {
	return sqliteRow{t.tx.QueryRowContext(ctx, q, args...)}
}

type sqliteRows struct{ *sql.Rows }

func (r sqliteRows) Close()              { _ = r.Rows.Close() }
func (r sqliteRows) Scan(d ...any) error { return mapSQLiteErr(r.Rows.Scan(d...)) }

type sqliteRow struct{ r *sql.Row }

func (r sqliteRow) Scan(d ...any) error { return mapSQLiteErr(r.r.Scan(d...)) }

func mapSQLiteErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %s", ErrConflict, strings.TrimPrefix(se.Error(), "constraint failed: "))
		case sqlite3.SQLITE_CONSTRAINT_TRIGGER: // an append-only table's trigger
			return fmt.Errorf("%w: %s", ErrDenied, se.Error())
		}
	}
	return err
}
