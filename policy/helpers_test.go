package policy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/storetest"
)

// fixture is one SQLite store in a temp dir with tenant acme and users, and
// an engine on a policy file.
type fixture struct {
	t       testing.TB
	dir     string
	dsn     string
	file    string
	clock   *storetest.Clock
	db      *store.DB
	tenant  store.Tenant
	admin   *store.Scope
	users   map[string]store.User
	numbers map[string][]string
	reg     *prometheus.Registry
	e       *Engine
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newFixture(t testing.TB, policy string, users ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, dir: t.TempDir(), clock: storetest.NewClock(time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)), users: map[string]store.User{}, numbers: map[string][]string{}}
	f.dsn = "sqlite:" + filepath.Join(f.dir, "bb.db")
	f.file = filepath.Join(f.dir, "policy.yaml")
	if err := os.WriteFile(f.file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	f.open()
	var err error
	if f.tenant, err = f.db.CreateTenant(ctx, "acme", "US"); err != nil {
		t.Fatal(err)
	}
	p, err := f.db.AdminScope(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	f.admin = f.db.In(p)
	for i, name := range users {
		u, err := f.admin.CreateUser(ctx, store.NewUser{Username: name, Role: store.RoleRep, Realm: "bb", Password: "correct horse"})
		if err != nil {
			t.Fatal(err)
		}
		f.users[name] = u
		num := fmt.Sprintf("+1646555%04d", 100+i)
		if _, err := f.admin.AddNumber(ctx, num, name); err != nil {
			t.Fatal(err)
		}
		f.numbers[name] = []string{num}
	}
	f.e = f.engine(nil)
	return f
}

func (f *fixture) open() {
	db, err := store.Open(context.Background(), f.dsn, store.Options{Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { db.Close() })
	f.db = db
}

// engine starts another engine on the same file and database (a second node).
func (f *fixture) engine(counters Counters) *Engine {
	f.t.Helper()
	if counters == nil {
		counters = f.db
	}
	f.reg = prometheus.NewRegistry()
	e, err := NewEngine(Options{File: f.file, Counters: counters, Logger: quiet, Registerer: f.reg, Now: f.clock.Now,
		PollInterval: 50 * time.Millisecond})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *fixture) req(user, dialled string) OutboundRequest {
	u := f.users[user]
	return OutboundRequest{TenantID: f.tenant.ID, TenantName: f.tenant.Name, UserID: u.ID, Username: user, Role: u.Role,
		DefaultCountry: "US", Dialled: dialled, CallerID: f.numbers[user][0], UserNumbers: f.numbers[user],
		CallID: fmt.Sprintf("call-%d", time.Now().UnixNano())}
}

func (f *fixture) decide(e *Engine, r OutboundRequest) Decision {
	f.t.Helper()
	d, err := e.DecideOutbound(context.Background(), r)
	if err != nil {
		f.t.Fatalf("decide %s: %v", r.Dialled, err)
	}
	return d
}

func (f *fixture) audits(action string) []store.AuditEvent {
	f.t.Helper()
	evs, err := f.admin.AuditEvents(context.Background(), store.AuditFilter{Action: action, Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

func decisions(e *Engine, result, reason string) float64 {
	return testutil.ToFloat64(e.m.decisions.WithLabelValues(result, reason))
}
