package jobs

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/pgtest"
)

const childEnv = "BLACKBOX_JOBS_TEST_CHILD"

// TestMain shares one Postgres cluster among the tests (each gets its own
// database), or plays a node to be killed when the lease test asks.
func TestMain(m *testing.M) {
	if dsn := os.Getenv(childEnv); dsn != "" {
		if err := child(dsn); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(pgtest.Run(m))
}

// child is node "a": it works every job it can get, blocking on each (as
// an upload to a hung object store would), prints "working ID" for each and
// waits to be killed (or 60 s, should the parent be gone).
func child(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	p := newProbe()
	p.block["stuck-shared"], p.block["stuck-local"] = true, true
	c, err := New(Options{DB: db, Node: "a", Lease: 2 * time.Second, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	if err := Register(c, p.kind()); err != nil {
		return err
	}
	go c.Run(ctx)
	for {
		select {
		case id := <-p.started:
			fmt.Printf("working %d\n", id)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TestLeaseRescue: node "a" dies (SIGKILL) while running two jobs, one on
// the shared queue and one on its local queue. Node "b", on the same
// database, retries the shared job once the lease is over; the local job
// waits for node "a", whose restart runs it. Neither loses an attempt to
// the dead node beyond the one it was on.
func TestLeaseRescue(t *testing.T) { backends(t, testLeaseRescue) }

func testLeaseRescue(t *testing.T, dsn string) {
	e := openEnv(t, dsn)
	ctx := context.Background()
	enq := e.client(t, "a", nil, nil) // enqueues as node "a"; never runs
	register(t, enq, newProbe())
	shared := enqueue(t, enq, e.scopeA, "stuck-shared", probeArgs{}, EnqueueOptions{})
	local := enqueue(t, enq, e.scopeA, "stuck-local", probeArgs{}, EnqueueOptions{Local: true})
	if local.Queue != "node-a" {
		t.Fatalf("local job on queue %q", local.Queue)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dsn)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	working := make(chan int64, 2)
	go func() {
		defer close(working)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "working "); ok {
				n, _ := strconv.ParseInt(id, 10, 64)
				working <- n
			}
		}
	}()
	var held []int64
	for len(held) < 2 {
		select {
		case id, ok := <-working:
			if !ok {
				t.Fatal("child exited before taking its jobs")
			}
			held = append(held, id)
		case <-time.After(20 * time.Second):
			t.Fatalf("child took %d of 2 jobs", len(held))
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	died := time.Now()
	for _, id := range held {
		if in, _ := enq.Get(ctx, id); in.State != StateRunning || in.Attempt != 1 {
			t.Fatalf("job %d after the kill: %+v", id, in)
		}
	}

	pb := newProbe()
	b := e.client(t, "b", nil, nil)
	register(t, b, pb)
	run(t, b)
	// The dead node was also River's leader: b leads (and rescues) once
	// that leadership expires, up to 15 s.
	done := waitState(t, b, shared.ID, StateCompleted, 40*time.Second)
	t.Logf("shared job rescued and completed %v after node a died", time.Since(died).Round(time.Millisecond))
	if time.Since(died) < 2*time.Second {
		t.Fatal("rescued before the lease ran out")
	}
	if done.Attempt != 2 || done.Errors != 1 || !strings.Contains(done.LastError, "Stuck job rescued") {
		t.Fatalf("rescued job %+v", done)
	}
	if len(done.AttemptedBy) != 2 || !strings.HasPrefix(done.AttemptedBy[0], "a-") || !strings.HasPrefix(done.AttemptedBy[1], "b-") {
		t.Fatalf("attempted by %v", done.AttemptedBy)
	}
	if pb.effect("stuck-shared") != 1 {
		t.Fatal("rescued job had no effect")
	}
	// The local job was rescued too but is node a's to run.
	time.Sleep(300 * time.Millisecond)
	if got := pb.attemptsOf(local.ID); len(got) != 0 {
		t.Fatalf("node b ran node a's local job: %v", got)
	}
	if in, _ := b.Get(ctx, local.ID); in.State == StateRunning || in.State.Dead() || in.State == StateCompleted {
		t.Fatalf("local job after rescue: %+v", in)
	}

	pa := newProbe()
	a2 := e.client(t, "a", nil, nil)
	register(t, a2, pa)
	run(t, a2)
	done = waitState(t, a2, local.ID, StateCompleted, 10*time.Second)
	if done.Attempt != 2 || pa.effect("stuck-local") != 1 {
		t.Fatalf("local job after node a came back: %+v", done)
	}
}

// TestRestartSurvival: jobs outlive their client. A job waiting for its
// retry and a job interrupted mid-run by shutdown both finish on a new
// client opened on the same database; the interrupted run is not counted
// as an attempt.
func TestRestartSurvival(t *testing.T) { backends(t, testRestartSurvival) }

func testRestartSurvival(t *testing.T, dsn string) {
	e1 := openEnv(t, dsn)
	p1 := newProbe()
	p1.block["slow"] = true
	c1 := e1.client(t, "n1", nil, func(o *Options) {
		o.Backoff = func(int) time.Duration { return 500 * time.Millisecond }
		o.StopGrace = 200 * time.Millisecond
	})
	register(t, c1, p1)
	retrying := enqueue(t, c1, e1.scopeA, "retrying", probeArgs{Fail: 1}, EnqueueOptions{})
	slow := enqueue(t, c1, e1.scopeB, "slow", probeArgs{}, EnqueueOptions{Local: true})
	stop1 := run(t, c1)
	deadline := time.Now().Add(10 * time.Second)
	for len(p1.attemptsOf(retrying.ID)) < 1 || len(p1.attemptsOf(slow.ID)) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("first attempts did not happen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop1() // "slow" is still running: interrupted after StopGrace
	if in, _ := c1.Get(context.Background(), slow.ID); in.State != StateAvailable || in.Attempt != 0 {
		t.Fatalf("interrupted job %+v, want available with its attempt given back", in)
	}
	late := enqueue(t, c1, e1.scopeA, "late", probeArgs{}, EnqueueOptions{}) // while nothing runs
	e1.db.Close()

	e2 := openEnv(t, dsn)
	p2 := newProbe()
	c2 := e2.client(t, "n1", nil, nil)
	register(t, c2, p2)
	run(t, c2)
	for _, j := range []struct {
		id      int64
		attempt int
	}{{retrying.ID, 2}, {slow.ID, 1}, {late.ID, 1}} {
		in := waitState(t, c2, j.id, StateCompleted, 10*time.Second)
		if in.Attempt != j.attempt {
			t.Fatalf("job %s finished at attempt %d, want %d", in.Key, in.Attempt, j.attempt)
		}
	}
	for _, k := range []string{"retrying", "slow", "late"} {
		if p2.effect(k) != 1 {
			t.Fatalf("job %s: %d effects", k, p2.effect(k))
		}
	}
	if !slices.Equal(p2.attemptsOf(slow.ID), []int{1}) {
		t.Fatalf("slow job attempts on restart: %v", p2.attemptsOf(slow.ID))
	}
}
