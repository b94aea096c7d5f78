package jobs

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/blackbox-gw/blackbox/store"
)

// EnqueueOptions adjust one Enqueue.
type EnqueueOptions struct {
	// Local keeps the job on this node's queue: its input is on this
	// node's disk. After a crash it waits for this node to come back.
	Local bool
	// MaxAttempts overrides the kind's.
	MaxAttempts int
	// NotBefore delays the first attempt.
	NotBefore time.Time
}

// uniqueStates: a job's identity is taken while its row exists in any state,
// dead ones included, so a dead job comes back only through Retry and never
// as a second copy beside it.
var uniqueStates = rivertype.JobStates()

// Enqueue adds a job of A's kind for the scope's tenant, identified by key
// (e.g. a recording id). If a job with the same kind, tenant and key exists
// in any state (waiting, running, dead, or completed and not yet cleaned
// out, which takes 24 hours), nothing is added and that job is returned
// with added false: enqueueing twice has one effect.
func Enqueue[A Args](ctx context.Context, c *Client, scope *store.Scope, key string, args A, o EnqueueOptions) (info Info, added bool, err error) {
	kind := args.Kind()
	if scope == nil {
		return Info{}, false, fmt.Errorf("enqueue %s: a tenant scope is required", kind)
	}
	if key == "" || len(key) > 200 {
		return Info{}, false, fmt.Errorf("enqueue %s: key must have 1 to 200 bytes", kind)
	}
	if o.MaxAttempts < 0 {
		return Info{}, false, fmt.Errorf("enqueue %s: MaxAttempts must not be negative", kind)
	}
	c.mu.Lock()
	ki, ok := c.kinds[kind]
	c.mu.Unlock()
	if !ok {
		return Info{}, false, fmt.Errorf("enqueue %s: kind not registered", kind)
	}
	queue := SharedQueue
	if o.Local {
		queue = c.local
	}
	res, err := c.rc.Insert(ctx, envelope[A]{TenantID: scope.Principal().TenantID(), Key: key, Args: args}, &river.InsertOpts{
		Queue:       queue,
		MaxAttempts: cmp.Or(o.MaxAttempts, ki.maxAttempts),
		ScheduledAt: o.NotBefore,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: uniqueStates},
	})
	if err != nil {
		return Info{}, false, fmt.Errorf("enqueue %s %s: %w", kind, key, err)
	}
	info, err = infoOf(res.Job)
	if err != nil {
		return Info{}, false, fmt.Errorf("enqueue %s %s: %w", kind, key, err)
	}
	return info, !res.UniqueSkippedAsDuplicate, nil
}

// Retry makes a dead, waiting or retry-scheduled job run as soon as a
// worker is free; a dead job gets one more attempt. A running or completed
// job is refused with ErrNotRetryable.
func (c *Client) Retry(ctx context.Context, id int64) (Info, error) {
	cur, err := c.Get(ctx, id)
	if err != nil {
		return Info{}, err
	}
	switch cur.State {
	case StateRunning, StateCompleted:
		return cur, fmt.Errorf("retry job %d: it is %s: %w", id, cur.State, ErrNotRetryable)
	}
	row, err := c.rc.JobRetry(ctx, id)
	return rowInfo("retry job", id, row, err)
}
