package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/pgtest"
	"github.com/blackbox-gw/blackbox/store/secrets"
)

// One Postgres cluster serves every test of this binary; each test gets its
// own database.
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// harness is one backend under the shared conformance suite: every test that
// takes a harness runs once on SQLite and once on Postgres, against one
// fresh database each.
type harness struct {
	name string
	dsn  string
	keys *secrets.Keyring
	key  string           // the keyring's one key, encoded
	path string           // SQLite: the database file
	pg   *pgtest.Database // Postgres: the database, its roles and pg_dump
}

// backends runs fn as a subtest per backend. Postgres is skipped loudly when
// it is not installed.
func backends(t *testing.T, fn func(t *testing.T, h *harness)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) { fn(t, newHarness(t, name)) })
	}
}

func newHarness(t testing.TB, name string) *harness {
	t.Helper()
	key, err := secrets.Generate()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{name: name, keys: kr, key: key}
	switch name {
	case "sqlite":
		h.path = filepath.Join(t.TempDir(), "bb.db")
		h.dsn = "sqlite:" + h.path
	case "postgres":
		h.pg = pgtest.New(t)
		h.dsn = h.pg.DSN
	default:
		t.Fatalf("unknown backend %s", name)
	}
	return h
}

// open opens the harness's database with opts, closed when t ends.
func (h *harness) open(t *testing.T, opts store.Options) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), h.dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// db opens the database with the harness's keyring.
func (h *harness) db(t *testing.T) *store.DB {
	t.Helper()
	return h.open(t, store.Options{Keyring: h.keys})
}

// atRest returns everything the backend keeps on disk, by name: the SQLite
// file with its WAL and shared memory, or a pg_dump of the Postgres database.
func (h *harness) atRest(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if h.pg != nil {
		dump, err := h.pg.Dump(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out["pg_dump "+h.pg.Name] = dump
		return out
	}
	for _, f := range []string{h.path, h.path + "-wal", h.path + "-shm"} {
		data, err := os.ReadFile(f)
		if err == nil {
			out[f] = data
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if len(out[h.path]) == 0 {
		t.Fatalf("sqlite file %s is missing or empty", h.path)
	}
	return out
}

// suiteBackend is the backend of the tests that open their store through
// openTest, twoTenants or openClocked rather than taking a harness: SQLite,
// except while TestOnPostgres reruns them.
var suiteBackend = "sqlite"

// openTest opens a fresh store of suiteBackend and returns it with its file
// ("" on Postgres).
func openTest(t *testing.T) (*store.DB, string) {
	t.Helper()
	h := newHarness(t, suiteBackend)
	return h.db(t), h.path
}

// tenantsIn returns scopes of two tenants, acme (A) and globex (B), in a
// fresh database of h.
func tenantsIn(t *testing.T, h *harness) (*store.DB, *store.Scope, *store.Scope) {
	t.Helper()
	ctx := context.Background()
	db := h.db(t)
	ta, err := db.CreateTenant(ctx, "acme", "US")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := db.CreateTenant(ctx, "globex", "US")
	if err != nil {
		t.Fatal(err)
	}
	return db, db.In(store.System(ta.ID)), db.In(store.System(tb.ID))
}

// fatalIf returns a function that fails t on a non-nil error.
func fatalIf(t testing.TB) func(error) {
	return func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}
