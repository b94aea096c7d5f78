// Package storetest opens real stores for other packages' tests: a fresh
// database (SQLite in a temp dir, or Postgres through pgtest), the two
// tenants every isolation test needs, and a settable clock.
package storetest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/pgtest"
)

// Tenant names of TwoTenants, in the order it returns them.
const (
	TenantA = "acme"
	TenantB = "globex"
)

// SQLiteDSN is a fresh SQLite database in t's temp dir.
func SQLiteDSN(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "bb.db") }

// Backends runs fn once on a fresh SQLite store and once on a fresh
// Postgres database (the production-shaped DSN: the gateway's role,
// migrations as the owner); Postgres skips loudly where it is not installed.
func Backends(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLiteDSN(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, pgtest.New(t).DSN) })
}

// Open opens (migrating on first use) the store at dsn, closed when t ends.
func Open(t testing.TB, dsn string, opts store.Options) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TwoTenants makes sure tenants acme and globex (country US) exist and
// returns them in that order; a store reopened on the same file keeps them.
func TwoTenants(t testing.TB, db *store.DB) (a, b store.Tenant) {
	t.Helper()
	ctx := context.Background()
	ts, err := db.Tenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) == 0 {
		for _, n := range []string{TenantA, TenantB} {
			if _, err := db.CreateTenant(ctx, n, "US"); err != nil {
				t.Fatal(err)
			}
		}
		if ts, err = db.Tenants(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(ts) < 2 || ts[0].Name != TenantA || ts[1].Name != TenantB {
		t.Fatalf("storetest: want tenants %s and %s, the store has %+v", TenantA, TenantB, ts)
	}
	return ts[0], ts[1]
}

// Clock is a settable time source, safe for concurrent use: pass its Now
// to the store (and whatever else is under test) to move time by hand.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
