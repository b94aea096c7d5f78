package store_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/blackbox-gw/blackbox/store"
)

// ownerExec runs SQL with the rights of whoever owns the schema: the owner
// role on Postgres, the file itself on SQLite.
func (h *harness) ownerExec(t *testing.T, sql string) {
	t.Helper()
	ctx := context.Background()
	if h.pg == nil {
		db := h.open(t, store.Options{})
		p, err := db.AdminScope(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.In(p).RawExec(ctx, sql); err != nil {
			t.Fatal(err)
		}
		db.Close()
		return
	}
	conn, err := pgx.Connect(ctx, h.pg.OwnerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaNewerThanBinaryIsRefused(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		db := h.db(t)
		if _, err := db.CreateTenant(ctx, "acme", "US"); err != nil {
			t.Fatal(err)
		}
		v, err := db.SchemaVersion()
		if err != nil || v < 2 {
			t.Fatalf("schema version %d %v", v, err)
		}
		db.Close()
		h.ownerExec(t, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`)
		_, err = store.Open(ctx, h.dsn, store.Options{})
		if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999") || !strings.Contains(err.Error(), "upgrade blackbox") {
			t.Fatalf("open a database from the future: %v", err)
		}
	})
}

func TestReopenDoesNotRemigrate(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		db := h.db(t)
		if _, err := db.CreateTenant(ctx, "acme", "US"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db = h.db(t)
		ts, err := db.Tenants(ctx)
		if err != nil || len(ts) != 1 {
			t.Fatalf("tenants after reopen: %v %v", ts, err)
		}
	})
}

// withoutMigrateAs is the DSN of the gateway's role alone.
func withoutMigrateAs(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("migrate_as")
	q.Del("migrate_password")
	u.RawQuery = q.Encode()
	return u.String()
}

func TestPostgresRoles(t *testing.T) {
	h := newHarness(t, "postgres")
	ctx := context.Background()
	appOnly := withoutMigrateAs(t, h.dsn)

	// The gateway's role cannot create the schema, and says what to do.
	_, err := store.Open(ctx, appOnly, store.Options{})
	if !errors.Is(err, store.ErrDenied) || !strings.Contains(err.Error(), "migrate_as") {
		t.Fatalf("app role migrating a fresh database: %v", err)
	}
	// Once the owner has migrated, the gateway's role alone starts fine.
	db := h.db(t)
	if _, err := db.CreateTenant(ctx, "acme", "US"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	app, err := store.Open(ctx, appOnly, store.Options{})
	if err != nil {
		t.Fatalf("app role on a migrated database: %v", err)
	}
	if ts, err := app.Tenants(ctx); err != nil || len(ts) != 1 {
		t.Fatalf("tenants: %v %v", ts, err)
	}
	app.Close()

	// A role that row-level security does not bind is refused outright.
	_, err = store.Open(ctx, h.pg.SuperDSN, store.Options{})
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "BYPASSRLS") {
		t.Fatalf("superuser DSN: %v", err)
	}
	bad, _ := url.Parse(h.dsn)
	q := bad.Query()
	q.Set("migrate_password", "wrong")
	bad.RawQuery = q.Encode()
	if _, err := store.Open(ctx, bad.String(), store.Options{}); err == nil || !strings.Contains(err.Error(), "migrate_as") {
		t.Fatalf("wrong owner password: %v", err)
	}
	q.Del("migrate_as")
	bad.RawQuery = q.Encode()
	if _, err := store.Open(ctx, bad.String(), store.Options{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("migrate_password without migrate_as: %v", err)
	}
}

// TestConcurrentMigrations: nodes starting together on an empty database
// migrate it once between them.
func TestConcurrentMigrations(t *testing.T) {
	h := newHarness(t, "postgres")
	ctx := context.Background()
	const nodes = 4
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := store.Open(ctx, h.dsn, store.Options{})
			if err == nil {
				err = db.Ping(ctx)
				db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(ctx, h.pg.SuperDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var steps, distinct int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&steps, &distinct); err != nil || steps != distinct || steps < 2 {
		t.Fatalf("schema_migrations: %d rows, %d versions (%v)", steps, distinct, err)
	}
}

// TestGrantAppForLibraryTables: a library's tables (River's river_*),
// created by the owner, become usable by blackbox_app, sequences included;
// our own tables keep the grants their migration chose.
func TestGrantAppForLibraryTables(t *testing.T) {
	h := newHarness(t, "postgres")
	ctx := context.Background()
	h.db(t)
	h.ownerExec(t, `CREATE TABLE river_demo (id bigserial PRIMARY KEY, note text); CREATE TABLE other_demo (x int)`)
	app, err := pgx.Connect(ctx, h.pg.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if _, err := app.Exec(ctx, `INSERT INTO river_demo (note) VALUES ('before')`); err == nil {
		t.Fatal("blackbox_app wrote a library table before any grant")
	}
	if err := store.GrantAppForTest(ctx, h.pg.OwnerDSN, ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("empty prefix: %v", err)
	}
	if err := store.GrantAppForTest(ctx, h.pg.OwnerDSN, "river_"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, `INSERT INTO river_demo (note) VALUES ('after'); UPDATE river_demo SET note = 'x'; DELETE FROM river_demo`); err != nil {
		t.Fatalf("blackbox_app on a granted library table: %v", err)
	}
	if _, err := app.Exec(ctx, `SELECT * FROM other_demo`); err == nil {
		t.Fatal("the grant reached a table outside the prefix")
	}
	// A prefix matching our tables leaves them as their migration made them.
	if err := store.GrantAppForTest(ctx, h.pg.OwnerDSN, "audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, `DELETE FROM audit_events`); err == nil {
		t.Fatal("grantApp gave DELETE on the audit log")
	}
}

// TestSchemasMatch: after migrating, both backends hold the same tables
// with the same columns of the same types, at the same schema version, so
// one set of queries means the same on both.
func TestSchemasMatch(t *testing.T) {
	ctx := context.Background()
	columns := map[string][]string{}
	versions := map[string]int{}
	for _, name := range []string{"sqlite", "postgres"} {
		h := newHarness(t, name)
		_, sa, _ := tenantsIn(t, h)
		// River's tables (river_*) are the library's own schema for each
		// backend, queried only by its driver for that backend.
		q := `SELECT table_name || '.' || column_name || ' ' || upper(data_type) FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name NOT LIKE 'river\_%' ORDER BY 1`
		if h.pg == nil {
			q = `SELECT m.name || '.' || p.name || ' ' || upper(p.type) FROM sqlite_master m JOIN pragma_table_info(m.name) p
				WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND m.name NOT LIKE 'river\_%' ESCAPE '\' ORDER BY 1`
		}
		cols, err := sa.RawStrings(ctx, q)
		if err != nil || len(cols) < 50 {
			t.Fatalf("%s columns: %d %v", name, len(cols), err)
		}
		columns[name] = cols
		db := h.db(t)
		if versions[name], err = db.SchemaVersion(); err != nil {
			t.Fatal(err)
		}
	}
	if versions["sqlite"] != versions["postgres"] {
		t.Errorf("schema versions: sqlite %d, postgres %d", versions["sqlite"], versions["postgres"])
	}
	in := func(list []string) map[string]bool {
		m := map[string]bool{}
		for _, c := range list {
			m[c] = true
		}
		return m
	}
	lite, pg := in(columns["sqlite"]), in(columns["postgres"])
	for c := range lite {
		if !pg[c] {
			t.Errorf("only on sqlite: %s", c)
		}
	}
	for c := range pg {
		if !lite[c] {
			t.Errorf("only on postgres: %s", c)
		}
	}
}
