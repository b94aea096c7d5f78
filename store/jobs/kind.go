package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/riverqueue/river"

	"github.com/blackbox-gw/blackbox/store"
)

// Args is the payload of one kind of job: a struct (not a pointer) encoded
// as JSON. Kind names the kind; stored jobs find their worker by it, so it
// must never change once jobs of it exist.
type Args interface {
	Kind() string
}

// Job is one attempt at a job.
type Job[A Args] struct {
	ID   int64
	Key  string
	Args A
	// Scope is the tenant the job was enqueued for, as recorded then.
	Scope       *store.Scope
	Attempt     int // 1 for the first
	MaxAttempts int
}

// Last reports whether a failure of this attempt dead-letters the job.
func (j Job[A]) Last() bool { return j.Attempt >= j.MaxAttempts }

// Kind says how one kind of job is worked.
type Kind[A Args] struct {
	// Work does the job. It must be idempotent: a job may run again after a
	// crash between its effect and its completion being recorded.
	Work func(ctx context.Context, job Job[A]) error
	// Dead, if set, is told when a failed attempt dead-letters the job (no
	// attempt left, or a Permanent error), before the job is marked dead.
	Dead func(ctx context.Context, job Job[A], err error)
	// MaxAttempts overrides the client's for this kind.
	MaxAttempts int
	// Backoff overrides the client's for this kind.
	Backoff func(attempt int) time.Duration
	// Timeout, if set, gives an attempt its own time limit from the job's
	// args (0: the client's, AttemptTimeout), e.g. by the size of what it
	// uploads. The rescue of a job from a dead node waits for it too.
	Timeout func(args A) time.Duration
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks an error no retry can cure (corrupt input, a row that is
// gone): the job is dead-lettered at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// envelope is what River stores as a job's args. Its unique key is the kind
// (River adds it), the tenant and the key.
type envelope[A Args] struct {
	TenantID string `json:"tenant_id" river:"unique"`
	Key      string `json:"key" river:"unique"`
	Args     A      `json:"args"`
}

func (envelope[A]) Kind() string {
	var a A
	return a.Kind()
}

var kindRe = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,62}$`)

// Register adds the worker of A's kind. All kinds must be registered before
// Run; enqueueing a kind needs it registered too, which catches a job that
// no node could ever work.
func Register[A Args](c *Client, k Kind[A]) error {
	var zero A
	kind := zero.Kind()
	switch {
	case !kindRe.MatchString(kind):
		return fmt.Errorf("jobs: kind %q: use lowercase letters, digits, '_' or '.'", kind)
	case k.Work == nil:
		return fmt.Errorf("jobs: kind %s: Work is required", kind)
	case k.MaxAttempts < 0:
		return fmt.Errorf("jobs: kind %s: MaxAttempts must not be negative", kind)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return fmt.Errorf("jobs: register %s: %w", kind, ErrStarted)
	}
	if _, dup := c.kinds[kind]; dup {
		return fmt.Errorf("jobs: kind %s registered twice", kind)
	}
	if err := river.AddWorkerSafely(c.workers, &worker[A]{c: c, k: k, kind: kind}); err != nil {
		return fmt.Errorf("jobs: register %s: %w", kind, err)
	}
	c.kinds[kind] = kindInfo{maxAttempts: cmp.Or(k.MaxAttempts, c.opts.MaxAttempts)}
	c.met.addKind(kind)
	return nil
}

// worker adapts a Kind to River.
type worker[A Args] struct {
	river.WorkerDefaults[envelope[A]]
	c    *Client
	k    Kind[A]
	kind string
}

func (w *worker[A]) Timeout(rj *river.Job[envelope[A]]) time.Duration {
	if w.k.Timeout == nil {
		return 0
	}
	return max(w.k.Timeout(rj.Args.Args), 0) // River reads -1 as "never", which no rescue could follow
}

func (w *worker[A]) NextRetry(rj *river.Job[envelope[A]]) time.Time {
	if w.k.Backoff == nil {
		return time.Time{} // the client's policy
	}
	return time.Now().Add(w.k.Backoff(len(rj.Errors) + 1))
}

func (w *worker[A]) Work(ctx context.Context, rj *river.Job[envelope[A]]) error {
	job := Job[A]{ID: rj.ID, Key: rj.Args.Key, Args: rj.Args.Args, Attempt: rj.Attempt, MaxAttempts: rj.MaxAttempts}
	log := w.c.log.With("job", rj.ID, "kind", w.kind, "key", job.Key, "attempt", job.Attempt, "max_attempts", job.MaxAttempts)
	if rj.Args.TenantID == "" {
		// Only Enqueue writes jobs, and it always records a tenant: this
		// row was written by something else and is not ours to run.
		err := fmt.Errorf("job %d carries no tenant", rj.ID)
		w.c.met.count(w.kind, resultDead)
		log.Error("job dead-lettered", "err", err)
		return river.JobCancel(err)
	}
	job.Scope = w.c.db.In(store.System(rj.Args.TenantID))
	err := w.call(ctx, job)
	switch {
	case err == nil:
		w.c.met.count(w.kind, resultOK)
		return nil
	case ctx.Err() == context.Canceled:
		// The client is stopping: River puts the job back as it was, its
		// attempt not counted, when the error says so.
		w.c.met.count(w.kind, resultInterrupted)
		log.Info("job interrupted by shutdown; it runs again on the next start", "err", err)
		return fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	var perm *permanentError
	if !errors.As(err, &perm) && !job.Last() {
		w.c.met.count(w.kind, resultRetry)
		log.Warn("job attempt failed; it will be retried", "err", err)
		return err
	}
	w.c.met.count(w.kind, resultDead)
	if w.k.Dead != nil {
		// The attempt's context may be spent (a timeout): the dead-letter
		// bookkeeping gets its own.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		w.k.Dead(dctx, job, err)
		cancel()
	}
	log.Error("job dead-lettered; `blackbox jobs retry` runs it again", "err", err)
	if perm != nil {
		return river.JobCancel(err)
	}
	return err
}

// call runs Work, turning a panic into an error so one bad job cannot take
// the process down and is counted like any failure.
func (w *worker[A]) call(ctx context.Context, job Job[A]) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("job %d panicked: %v", job.ID, p)
		}
	}()
	return w.k.Work(ctx, job)
}
