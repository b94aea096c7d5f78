package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/storetest"
)

// env is a store with two tenants.
type env struct {
	dsn    string
	db     *store.DB
	scopeA *store.Scope
	scopeB *store.Scope
}

// newEnv is a fresh SQLite store: the tests that are not about the
// database run on it alone.
func newEnv(t testing.TB) *env { return openEnv(t, storetest.SQLiteDSN(t)) }

// backends runs fn on a fresh SQLite store and a fresh Postgres database.
func backends(t *testing.T, fn func(t *testing.T, dsn string)) { storetest.Backends(t, fn) }

// openEnv opens (migrating on first use) the store at dsn, with tenants
// acme and globex.
func openEnv(t testing.TB, dsn string) *env {
	t.Helper()
	db := storetest.Open(t, dsn, store.Options{})
	a, b := storetest.TwoTenants(t, db)
	return &env{dsn: dsn, db: db, scopeA: db.In(store.System(a.ID)), scopeB: db.In(store.System(b.ID))}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// client builds a fast-polling client on e; mod may adjust the options.
func (e *env) client(t testing.TB, node string, reg prometheus.Registerer, mod func(*Options)) *Client {
	t.Helper()
	o := Options{DB: e.db, Node: node, Workers: 2, MaxAttempts: 3, Lease: 2 * time.Second, PollInterval: 20 * time.Millisecond,
		StopGrace: 2 * time.Second, Backoff: func(int) time.Duration { return 20 * time.Millisecond }, Logger: testLogger(), Registerer: reg}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run starts c.Run and returns a stop function that ends it and waits.
func run(t testing.TB, c *Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// probeArgs asks the probe worker to fail its first Fail attempts (-1:
// always).
type probeArgs struct {
	Fail int `json:"fail"`
}

func (probeArgs) Kind() string { return "test.probe" }

// probe records what the worker saw.
type probe struct {
	mu       sync.Mutex
	attempts []Job[probeArgs]
	at       []time.Time
	effects  map[string]int // key -> successful runs
	tenants  map[string]string
	dead     []Job[probeArgs]
	deadErr  []error
	started  chan int64
	permFail bool
	block    map[string]bool // keys whose job blocks until its context ends
}

func newProbe() *probe {
	return &probe{effects: map[string]int{}, tenants: map[string]string{}, started: make(chan int64, 16), block: map[string]bool{}}
}

var errPlanned = errors.New("planned failure")

func (p *probe) kind() Kind[probeArgs] {
	return Kind[probeArgs]{
		Work: func(ctx context.Context, job Job[probeArgs]) error {
			p.mu.Lock()
			p.attempts = append(p.attempts, job)
			p.at = append(p.at, time.Now())
			perm := p.permFail
			p.mu.Unlock()
			select {
			case p.started <- job.ID:
			default:
			}
			if p.block[job.Key] {
				<-ctx.Done()
				return ctx.Err()
			}
			if job.Args.Fail < 0 || job.Attempt <= job.Args.Fail {
				if perm {
					return Permanent(errPlanned)
				}
				return errPlanned
			}
			t, err := job.Scope.Tenant(ctx)
			if err != nil {
				return err
			}
			p.mu.Lock()
			p.effects[job.Key]++
			p.tenants[job.Key] = t.Name
			p.mu.Unlock()
			return nil
		},
		Dead: func(ctx context.Context, job Job[probeArgs], err error) {
			p.mu.Lock()
			p.dead = append(p.dead, job)
			p.deadErr = append(p.deadErr, err)
			p.mu.Unlock()
		},
	}
}

func (p *probe) effect(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.effects[key]
}

func (p *probe) attemptsOf(id int64) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, j := range p.attempts {
		if j.ID == id {
			out = append(out, j.Attempt)
		}
	}
	return out
}

func register(t testing.TB, c *Client, p *probe) {
	t.Helper()
	if err := Register(c, p.kind()); err != nil {
		t.Fatal(err)
	}
}

// waitState polls a job until it reaches state.
func waitState(t testing.TB, c *Client, id int64, state State, within time.Duration) Info {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		in, err := c.Get(context.Background(), id)
		if err == nil && in.State == state {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d: state %q (err %v), want %q within %v", id, in.State, err, state, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func enqueue(t testing.TB, c *Client, s *store.Scope, key string, a probeArgs, o EnqueueOptions) Info {
	t.Helper()
	in, added, err := Enqueue(context.Background(), c, s, key, a, o)
	if err != nil {
		t.Fatal(err)
	}
	if !added {
		t.Fatalf("job %s was not added (found %d)", key, in.ID)
	}
	return in
}

// gauge reads a metric from a registry; labels match a series.
func gather(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(labels)
}
