package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/store"
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
	// Interval between sweeps of Run (default 24h).
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
		opts.Interval = 24 * time.Hour
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

// Run sweeps at once and then every Interval until ctx ends. It is the
// simple runner until durable jobs (store/jobs) schedule Sweep instead.
func (r *Retention) Run(ctx context.Context) error {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		if _, err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("retention sweep incomplete; the next sweep retries", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
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
