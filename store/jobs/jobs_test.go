package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"go.uber.org/goleak"
)

// TestEnqueueIdempotent: the same (kind, tenant, key) enqueued twice, before
// and after it ran, is one job with one effect; another tenant's job with
// the same key is its own, and each worker sees its own tenant.
func TestEnqueueIdempotent(t *testing.T) { backends(t, testEnqueueIdempotent) }

func testEnqueueIdempotent(t *testing.T, dsn string) {
	e := openEnv(t, dsn)
	ctx := context.Background()
	c := e.client(t, "n1", nil, nil)
	p := newProbe()
	register(t, c, p)

	first := enqueue(t, c, e.scopeA, "rec-1", probeArgs{}, EnqueueOptions{})
	again, added, err := Enqueue(ctx, c, e.scopeA, "rec-1", probeArgs{Fail: 5}, EnqueueOptions{Local: true})
	if err != nil || added || again.ID != first.ID {
		t.Fatalf("second enqueue: added=%v id=%d (first %d) err=%v", added, again.ID, first.ID, err)
	}
	other := enqueue(t, c, e.scopeB, "rec-1", probeArgs{}, EnqueueOptions{})
	if other.ID == first.ID || other.TenantID == first.TenantID {
		t.Fatal("another tenant's job shares the identity")
	}
	if first.TenantID != e.scopeA.Principal().TenantID() || first.Key != "rec-1" || first.Queue != SharedQueue || first.MaxAttempts != 3 {
		t.Fatalf("job info %+v", first)
	}

	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	stop := run(t, c)
	waitState(t, c, first.ID, StateCompleted, 5*time.Second)
	waitState(t, c, other.ID, StateCompleted, 5*time.Second)
	// Completed jobs still hold their identity.
	if _, added, err := Enqueue(ctx, c, e.scopeA, "rec-1", probeArgs{}, EnqueueOptions{}); added || err != nil {
		t.Fatalf("enqueue after completion: added=%v err=%v", added, err)
	}
	time.Sleep(100 * time.Millisecond) // room for a wrong second run
	stop()
	if n := p.effect("rec-1"); n != 2 { // one per tenant
		t.Fatalf("%d effects for two jobs", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.attempts) != 2 {
		t.Fatalf("%d attempts, want 2", len(p.attempts))
	}
	for _, j := range p.attempts {
		want := e.scopeA.Principal().TenantID()
		if j.ID == other.ID {
			want = e.scopeB.Principal().TenantID()
		}
		if j.Scope.Principal().TenantID() != want {
			t.Fatalf("job %d ran in tenant %s, enqueued for %s", j.ID, j.Scope.Principal().TenantID(), want)
		}
	}
}

func TestEnqueueRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client(t, "n1", nil, nil)
	if _, _, err := Enqueue(ctx, c, e.scopeA, "k", probeArgs{}, EnqueueOptions{}); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("unregistered kind: %v", err)
	}
	register(t, c, newProbe())
	if err := Register(c, newProbe().kind()); err == nil {
		t.Fatal("kind registered twice")
	}
	for _, key := range []string{"", strings.Repeat("k", 201)} {
		if _, _, err := Enqueue(ctx, c, e.scopeA, key, probeArgs{}, EnqueueOptions{}); err == nil {
			t.Fatalf("key of %d bytes accepted", len(key))
		}
	}
	if _, _, err := Enqueue(ctx, c, nil, "k", probeArgs{}, EnqueueOptions{}); err == nil {
		t.Fatal("enqueue without a scope")
	}
	run(t, c)
	waitRunning(t, c)
	if err := Register(c, Kind[otherKind]{Work: func(context.Context, Job[otherKind]) error { return nil }}); !errors.Is(err, ErrStarted) {
		t.Fatalf("register while running: %v", err)
	}
	if err := c.Run(ctx); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Run: %v", err)
	}
}

type otherKind struct{}

func (otherKind) Kind() string { return "test.other" }

func waitRunning(t *testing.T, c *Client) {
	t.Helper()
	for range 500 {
		c.mu.Lock()
		r := c.running
		c.mu.Unlock()
		if r {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("client never ran")
}

type badKind struct{}

func (badKind) Kind() string { return "Bad Kind" }

func TestRegisterRefusals(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "n1", nil, nil)
	if err := Register(c, Kind[badKind]{Work: func(context.Context, Job[badKind]) error { return nil }}); err == nil {
		t.Fatal("kind name with spaces accepted")
	}
	if err := Register(c, Kind[probeArgs]{}); err == nil {
		t.Fatal("kind without Work accepted")
	}
	if err := c.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no job kinds") {
		t.Fatalf("Run without kinds: %v", err)
	}
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without DB")
	}
	if _, err := New(Options{DB: e.db, Lease: time.Millisecond}); err == nil {
		t.Fatal("sub-second lease accepted")
	}
}

// TestRetryWithBackoff: failed attempts are retried after the backoff, which
// grows; the job completes on the third attempt and the metrics say so.
func TestRetryWithBackoff(t *testing.T) { backends(t, testRetryWithBackoff) }

func testRetryWithBackoff(t *testing.T, dsn string) {
	e := openEnv(t, dsn)
	reg := prometheus.NewRegistry()
	base := 150 * time.Millisecond
	c := e.client(t, "n1", reg, func(o *Options) { o.Backoff = Exponential(base, 10*time.Second); o.MaxAttempts = 5 })
	p := newProbe()
	register(t, c, p)
	run(t, c)
	in := enqueue(t, c, e.scopeA, "flaky", probeArgs{Fail: 2}, EnqueueOptions{})
	done := waitState(t, c, in.ID, StateCompleted, 10*time.Second)
	if done.Attempt != 3 || done.Errors != 2 || !strings.Contains(done.LastError, errPlanned.Error()) {
		t.Fatalf("completed job %+v", done)
	}
	p.mu.Lock()
	at := append([]time.Time(nil), p.at...)
	p.mu.Unlock()
	if len(at) != 3 {
		t.Fatalf("%d attempts", len(at))
	}
	// Equal jitter: retry n waits between half and all of base·2^(n-1);
	// polling (20 ms) and scheduling add a little on top.
	for n, gap := range []time.Duration{at[1].Sub(at[0]), at[2].Sub(at[1])} {
		nominal := base << n
		if gap < nominal/2 || gap > nominal+300*time.Millisecond {
			t.Fatalf("retry %d came after %v, want within [%v, %v]", n+1, gap, nominal/2, nominal)
		}
	}
	if got := gather(t, reg, "blackbox_jobs_total", map[string]string{"kind": "test.probe", "result": "retry"}); got != 2 {
		t.Fatalf("retry count %v", got)
	}
	if got := gather(t, reg, "blackbox_jobs_total", map[string]string{"kind": "test.probe", "result": "ok"}); got != 1 {
		t.Fatalf("ok count %v", got)
	}
	if n := p.effect("flaky"); n != 1 {
		t.Fatalf("%d effects", n)
	}
}

func TestExponentialBackoff(t *testing.T) {
	b := Exponential(time.Second, 5*time.Minute)
	top := time.Duration(0)
	for a := 1; a <= 30; a++ {
		nominal := min(time.Second<<min(a-1, 20), 5*time.Minute)
		for range 20 {
			d := b(a)
			if d < nominal/2 || d > nominal {
				t.Fatalf("attempt %d: %v outside [%v, %v]", a, d, nominal/2, nominal)
			}
			top = max(top, d)
		}
	}
	if top < 4*time.Minute {
		t.Fatalf("backoff never reaches its cap: %v", top)
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[DefaultBackoff(6)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("no jitter: %d distinct waits in 50", len(seen))
	}
}

// TestDeadLetter: a job failing every attempt is dead-lettered after
// MaxAttempts, its Dead hook told once, counted, listed and gauged; a retry
// gives it one more attempt, which succeeds and clears it.
func TestDeadLetter(t *testing.T) { backends(t, testDeadLetter) }

func testDeadLetter(t *testing.T, dsn string) {
	e := openEnv(t, dsn)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	c := e.client(t, "n1", reg, nil)
	p := newProbe()
	register(t, c, p)
	run(t, c)
	in := enqueue(t, c, e.scopeA, "doomed", probeArgs{Fail: 3}, EnqueueOptions{})
	ok := enqueue(t, c, e.scopeA, "fine", probeArgs{}, EnqueueOptions{})
	dead := waitState(t, c, in.ID, StateDiscarded, 10*time.Second)
	waitState(t, c, ok.ID, StateCompleted, 5*time.Second)
	if dead.Attempt != 3 || dead.Errors != 3 || !dead.State.Dead() || dead.FinalizedAt.IsZero() {
		t.Fatalf("dead job %+v", dead)
	}
	if got := p.attemptsOf(in.ID); len(got) != 3 {
		t.Fatalf("attempts %v, want 3", got)
	}
	p.mu.Lock()
	if len(p.dead) != 1 || p.dead[0].ID != in.ID || p.dead[0].Attempt != 3 || !errors.Is(p.deadErr[0], errPlanned) {
		t.Fatalf("dead hook: %+v %v", p.dead, p.deadErr)
	}
	p.mu.Unlock()
	if got := gather(t, reg, "blackbox_jobs_dead", nil); got != 1 {
		t.Fatalf("jobs_dead %v", got)
	}
	if got := gather(t, reg, "blackbox_jobs_total", map[string]string{"kind": "test.probe", "result": "dead"}); got != 1 {
		t.Fatalf("dead count %v", got)
	}
	list, err := c.List(ctx, ListFilter{Dead: true})
	if err != nil || len(list) != 1 || list[0].ID != in.ID || list[0].Key != "doomed" {
		t.Fatalf("dead list %+v %v", list, err)
	}
	if all, _ := c.List(ctx, ListFilter{}); len(all) != 2 || all[0].ID < all[1].ID {
		t.Fatalf("list of all, newest first: %+v", all)
	}
	// Enqueueing the dead job's identity again does not add a copy.
	if again, added, err := Enqueue(ctx, c, e.scopeA, "doomed", probeArgs{}, EnqueueOptions{}); added || err != nil || again.ID != in.ID || !again.State.Dead() {
		t.Fatalf("enqueue of a dead identity: %+v added=%v err=%v", again, added, err)
	}

	retried, err := c.Retry(ctx, in.ID) // attempt 4 > Fail 3: succeeds
	if err != nil || retried.State != StateAvailable || retried.MaxAttempts != 4 {
		t.Fatalf("retry: %+v %v", retried, err)
	}
	waitState(t, c, in.ID, StateCompleted, 5*time.Second)
	if got := gather(t, reg, "blackbox_jobs_dead", nil); got != 0 {
		t.Fatalf("jobs_dead after retry %v", got)
	}
	if p.effect("doomed") != 1 {
		t.Fatal("retried job had no effect")
	}
	if _, err := c.Retry(ctx, in.ID); !errors.Is(err, ErrNotRetryable) {
		t.Fatalf("retry of a completed job: %v", err)
	}
	if _, err := c.Retry(ctx, 999999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry of a missing job: %v", err)
	}
}

// TestPermanentError: a Permanent error dead-letters at the first attempt.
func TestPermanentError(t *testing.T) { backends(t, testPermanentError) }

func testPermanentError(t *testing.T, dsn string) {
	e := openEnv(t, dsn)
	c := e.client(t, "n1", nil, nil)
	p := newProbe()
	p.permFail = true
	register(t, c, p)
	run(t, c)
	in := enqueue(t, c, e.scopeA, "corrupt", probeArgs{Fail: -1}, EnqueueOptions{})
	dead := waitState(t, c, in.ID, StateCancelled, 5*time.Second)
	if dead.Attempt != 1 || !dead.State.Dead() {
		t.Fatalf("permanent failure %+v", dead)
	}
	if n, err := c.DeadCount(context.Background()); n != 1 || err != nil {
		t.Fatalf("dead count %d %v", n, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.dead) != 1 {
		t.Fatalf("dead hook called %d times", len(p.dead))
	}
}

// TestJobWithoutTenant: a row that did not come through Enqueue (no tenant)
// is never run in any tenant's scope.
func TestJobWithoutTenant(t *testing.T) { backends(t, testJobWithoutTenant) }

func testJobWithoutTenant(t *testing.T, dsn string) {
	e := openEnv(t, dsn)
	c := e.client(t, "n1", nil, nil)
	p := newProbe()
	register(t, c, p)
	res, err := c.rc.Insert(context.Background(), envelope[probeArgs]{Key: "forged"}, &river.InsertOpts{})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitState(t, c, res.Job.ID, StateCancelled, 5*time.Second)
	if got := p.attemptsOf(res.Job.ID); len(got) != 0 {
		t.Fatalf("a job without a tenant reached the worker: %v", got)
	}
}

func TestLocalQueueNames(t *testing.T) {
	for node, want := range map[string]string{"n1": "node-n1", "edge-2": "node-edge-2"} {
		if got := LocalQueue(node); got != want {
			t.Fatalf("LocalQueue(%q) = %q, want %q", node, got, want)
		}
	}
	a, b := LocalQueue("Box.A"), LocalQueue("box-a")
	if a == b || !strings.HasPrefix(a, "node-box-a-") {
		t.Fatalf("distinct nodes share a queue or bad name: %q %q", a, b)
	}
	long := LocalQueue(strings.Repeat("X", 300))
	if len(long) > 64 || LocalQueue("") == "node-" {
		t.Fatalf("queue names %q %q", long, LocalQueue(""))
	}
}

// TestNoGoroutinesWithoutRun: the CLI builds a client, lists and retries,
// and leaves nothing running.
func TestNoGoroutinesWithoutRun(t *testing.T) {
	e := newEnv(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := e.client(t, "cli", nil, nil)
	if _, err := c.List(context.Background(), ListFilter{Dead: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Retry(context.Background(), 1); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

type slowArgs struct {
	LimitMS int `json:"limit_ms"`
}

func (slowArgs) Kind() string { return "test.slow" }

// TestKindTimeout: a kind's Timeout sets each attempt's limit from its args;
// an attempt that runs out of time is a failed attempt, not an interrupted
// one.
func TestKindTimeout(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "n1", nil, func(o *Options) { o.MaxAttempts = 1 })
	took := make(chan time.Duration, 1)
	err := Register(c, Kind[slowArgs]{
		Work: func(ctx context.Context, j Job[slowArgs]) error {
			t0 := time.Now()
			<-ctx.Done()
			took <- time.Since(t0)
			return ctx.Err()
		},
		Timeout: func(a slowArgs) time.Duration { return time.Duration(a.LimitMS) * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.AttemptTimeout() != 1600*time.Millisecond { // four fifths of the 2 s lease
		t.Fatalf("attempt timeout %v", c.AttemptTimeout())
	}
	run(t, c)
	in, _, err := Enqueue(context.Background(), c, e.scopeA, "slow", slowArgs{LimitMS: 300}, EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-took:
		if d < 250*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("attempt ran %v under a 300 ms limit", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attempt never ran")
	}
	dead := waitState(t, c, in.ID, StateDiscarded, 5*time.Second)
	if dead.Attempt != 1 || !strings.Contains(dead.LastError, "deadline") {
		t.Fatalf("timed-out job %+v", dead)
	}
}

func TestOneClientPerRegistry(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	e.client(t, "n1", reg, nil)
	if _, err := New(Options{DB: e.db, Node: "n1", Registerer: reg}); err == nil || !strings.Contains(err.Error(), "one Client per registry") {
		t.Fatalf("second client on one registry: %v", err)
	}
	if got := gather(t, reg, "blackbox_jobs_dead", nil); got != 0 {
		t.Fatalf("first client's gauge after the refusal: %v", got)
	}
}
