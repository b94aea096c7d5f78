package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// RetentionOptions configures the retention sweep.
type RetentionOptions struct {
	DB      *store.DB
	Objects objects.Store
	// RetentionDays gives a tenant's retention period from the policy; 0 or
	// less keeps its recordings forever. Nil: every tenant keeps forever
	// (the sweep then only completes deletions that began earlier).
	RetentionDays func(tenantName string) int
	// Jobs runs each tenant's daily sweep as a durable job (retried, dead-
	// lettered, rescued from a dead node); required by Run.
	Jobs *jobs.Client
	// Interval is how often Run makes sure today's sweeps are enqueued
	// (default 1h; a sweep runs once per tenant and UTC day whatever the
	// number of nodes or ticks).
	Interval   time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Retention deletes recordings past their tenant's retention period:
// object and metadata, with an audit event each. Recordings of a call under
// legal hold stay. Sweep is safe to run on several nodes at once and to
// interrupt anywhere: a deletion that began is completed by the next sweep.
type Retention struct {
	opts    RetentionOptions
	log     *slog.Logger
	deleted prometheus.Counter
	failed  prometheus.Counter
}

// NewRetention checks opts.
func NewRetention(opts RetentionOptions) (*Retention, error) {
	switch {
	case opts.DB == nil:
		return nil, errors.New("retention: DB is required")
	case opts.Objects == nil:
		return nil, errors.New("retention: Objects is required")
	case opts.Interval < 0:
		return nil, errors.New("retention: Interval must not be negative")
	}
	if opts.Interval == 0 {
		opts.Interval = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Retention{
		opts: opts,
		log:  opts.Logger,
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blackbox_retention_deleted_recordings_total",
			Help: "Recordings deleted (object and metadata) past retention or by an owner.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blackbox_retention_failures_total",
			Help: "Recording deletions that failed and wait for the next sweep.",
		}),
	}
	if opts.Jobs != nil {
		if err := r.registerJobs(opts.Jobs); err != nil {
			return nil, fmt.Errorf("retention: %w", err)
		}
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{r.deleted, r.failed} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("retention: %w", err)
			}
		}
	}
	return r, nil
}

// SweepResult counts what a sweep did.
type SweepResult struct {
	Tenants int // tenants swept
	Deleted int // recordings deleted past retention
	Resumed int // deletions begun earlier (a crash, an outage) now completed
	Held    int // recordings past retention kept by a legal hold
	Failed  int // deletions that failed; retried by the next sweep
}

func (a *SweepResult) add(b SweepResult) {
	a.Tenants += b.Tenants
	a.Deleted += b.Deleted
	a.Resumed += b.Resumed
	a.Held += b.Held
	a.Failed += b.Failed
}

func cutoff(now time.Time, days int) time.Time { return now.Add(-time.Duration(days) * 24 * time.Hour) }

// sweepBatch is how many candidates one query returns.
const sweepBatch = 100

// Sweep runs once over every tenant. Failures of single recordings do not
// stop it; they are counted and returned joined.
func (r *Retention) Sweep(ctx context.Context) (SweepResult, error) {
	tenants, err := r.opts.DB.Tenants(ctx)
	if err != nil {
		return SweepResult{}, fmt.Errorf("retention sweep: %w", err)
	}
	var (
		total SweepResult
		errs  []error
	)
	for _, t := range tenants {
		res, err := r.SweepTenant(ctx, t)
		total.add(res)
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return total, errors.Join(errs...)
}

// SweepTenant sweeps one tenant: it completes deletions begun earlier, then
// deletes what is past the tenant's retention period. A job system may run
// it per tenant.
func (r *Retention) SweepTenant(ctx context.Context, t store.Tenant) (SweepResult, error) {
	res := SweepResult{Tenants: 1}
	sc := r.opts.DB.In(store.System(t.ID))
	var errs []error
	pending, err := sc.PendingDeletions(ctx)
	if err != nil {
		return res, fmt.Errorf("tenant %s: %w", t.Name, err)
	}
	for _, d := range pending {
		if err := finishDeletion(ctx, r.opts.Objects, sc, d); err != nil {
			res.Failed++
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.Name, err))
			continue
		}
		res.Resumed++
	}
	days := 0
	if r.opts.RetentionDays != nil {
		days = r.opts.RetentionDays(t.Name)
	}
	if days > 0 {
		cut := cutoff(r.opts.Now(), days)
		req := store.DeletionRequest{Kind: store.DeleteRetention, RetentionDays: days, Cutoff: cut}
		after := ""
		for ctx.Err() == nil {
			recs, err := sc.ExpiredRecordings(ctx, cut, after, sweepBatch)
			if err != nil {
				errs = append(errs, fmt.Errorf("tenant %s: %w", t.Name, err))
				break
			}
			for _, rec := range recs {
				after = rec.ID
				err := deleteRecording(ctx, r.opts.Objects, sc, rec.ID, req)
				switch {
				case err == nil:
					res.Deleted++
				case errors.Is(err, store.ErrOnHold), errors.Is(err, store.ErrNotFound):
					// Held or deleted since the query: not ours to count.
				default:
					res.Failed++
					errs = append(errs, fmt.Errorf("tenant %s: %w", t.Name, err))
				}
			}
			if len(recs) < sweepBatch {
				break
			}
		}
		if res.Held, err = sc.HeldExpiredRecordings(ctx, cut); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.Name, err))
		}
	}
	r.deleted.Add(float64(res.Deleted + res.Resumed))
	r.failed.Add(float64(res.Failed))
	if res.Deleted+res.Resumed+res.Failed > 0 {
		r.log.Info("retention sweep", "tenant", t.Name, "retention_days", days, "deleted", res.Deleted,
			"resumed", res.Resumed, "held", res.Held, "failed", res.Failed)
	}
	return res, errors.Join(errs...)
}

// RetentionArgs is one tenant's retention sweep for one UTC day, a durable
// job: the tenant comes from the job's scope, the day makes it unique.
type RetentionArgs struct {
	Day string `json:"day"`
}

// Kind names the job kind.
func (RetentionArgs) Kind() string { return "retention.sweep" }

// registerJobs makes the sweep a durable job kind.
func (r *Retention) registerJobs(c *jobs.Client) error {
	return jobs.Register(c, jobs.Kind[RetentionArgs]{
		Work: func(ctx context.Context, j jobs.Job[RetentionArgs]) error {
			t, err := j.Scope.Tenant(ctx)
			if err != nil {
				return err
			}
			res, err := r.SweepTenant(ctx, t)
			r.log.Info("retention sweep", "tenant", t.Name, "day", j.Args.Day, "deleted", res.Deleted,
				"resumed", res.Resumed, "held", res.Held, "failed", res.Failed)
			return err
		},
	})
}

// Run enqueues today's sweep of every tenant now and on each tick, until
// ctx is done. Every node may run it: a sweep is unique per tenant and day,
// so exactly one job runs it, on whichever node takes it (and on another
// if that node dies).
func (r *Retention) Run(ctx context.Context) error {
	if r.opts.Jobs == nil {
		return errors.New("retention: Run needs Options.Jobs")
	}
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		if err := r.enqueueToday(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("retention: enqueueing today's sweeps failed; the next tick retries", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *Retention) enqueueToday(ctx context.Context) error {
	day := r.opts.Now().UTC().Format(time.DateOnly)
	tenants, err := r.opts.DB.Tenants(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range tenants {
		if _, _, err := jobs.Enqueue(ctx, r.opts.Jobs, r.opts.DB.In(store.System(t.ID)), "retention:"+day,
			RetentionArgs{Day: day}, jobs.EnqueueOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.Name, err))
		}
	}
	return errors.Join(errs...)
}

// deleteRecording begins a deletion (hold and policy checks in the store),
// then completes it. Once begun it runs to the end even if the caller goes
// away: a half-done deletion is only ever left by a failure.
func deleteRecording(ctx context.Context, objs objects.Store, sc *store.Scope, id string, req store.DeletionRequest) error {
	d, err := sc.BeginRecordingDeletion(ctx, id, req)
	if err != nil {
		return err
	}
	return finishDeletion(context.WithoutCancel(ctx), objs, sc, d)
}

// finishDeletion deletes the object, then the metadata; the order means a
// failure leaves metadata pointing at nothing (and the deletion begun, so
// it is retried), never an object nobody knows about.
func finishDeletion(ctx context.Context, objs objects.Store, sc *store.Scope, d store.RecordingDeletion) error {
	if err := objs.Delete(ctx, d.ObjectKey); err != nil {
		return storageError{fmt.Errorf("delete recording %s: deletion begun, object remains until the next sweep: %w", d.RecordingID, err)}
	}
	return sc.FinishRecordingDeletion(ctx, d.RecordingID)
}
