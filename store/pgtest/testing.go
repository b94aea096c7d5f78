package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// EnvRequire, when set to 1, turns "Postgres is not installed" from a skip
// into a failure (CI, where .ci/run installs it).
const EnvRequire = "BLACKBOX_REQUIRE_POSTGRES"

// shared is the one cluster of a test binary that called Run.
var shared struct {
	mu      sync.Mutex
	enabled bool
	srv     *Server
	err     error
}

// Run runs the tests of a binary with one shared cluster, started by the
// first New and stopped after the last test:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.enabled = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		shared.srv = nil
	}
	return code
}

// New returns a fresh database for t, dropped when t ends. It skips t
// loudly when Postgres is not installed (fails instead with
// BLACKBOX_REQUIRE_POSTGRES=1).
func New(t testing.TB) *Database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server(ctx, t)
	if errors.Is(err, ErrNoBinaries) {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 but %v", EnvRequire, err)
		}
		t.Skipf("SKIPPING POSTGRES TEST %s: %v", t.Name(), err)
	}
	if err != nil {
		t.Fatal(err)
	}
	db, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("drop %s: %v", db.Name, err)
		}
	})
	return db
}

// server is the shared cluster under Run, else one for t alone.
func server(ctx context.Context, t testing.TB) (*Server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.enabled {
		srv, err := Start(ctx, Options{Logf: t.Logf})
		if err == nil {
			t.Cleanup(func() {
				if err := srv.Stop(); err != nil {
					t.Error(err)
				}
			})
		}
		return srv, err
	}
	if shared.srv == nil && shared.err == nil {
		// Not t.Logf: the cluster outlives this test.
		shared.srv, shared.err = Start(ctx, Options{})
	}
	return shared.srv, shared.err
}
