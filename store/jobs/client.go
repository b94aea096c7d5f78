// Package jobs runs Blackbox's background work (recording uploads now,
// webhook deliveries and retention sweeps later) as durable jobs in the
// store's database, on River (github.com/riverqueue/river).
//
// A job is identified by (kind, tenant, key): enqueueing the same identity
// twice has one effect. Failed attempts are retried with exponential backoff
// and jitter; after the kind's maximum attempts, or on a Permanent error, the
// job is dead-lettered and stays visible until Retry. The tenant a job works
// for is recorded when it is enqueued, from the scope of the code that
// created it, and the worker gets that scope back: it never comes from a
// client. Jobs survive restarts (they are rows), and a job whose node died
// while running it is retried after the lease (River's stuck-job rescuer).
//
// Two queues per node: the shared queue, which any node works, and the
// node's local queue, for jobs whose input is on that node's disk (a
// recording's spool).
package jobs

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/blackbox-gw/blackbox/store"
)

// Sentinel errors callers decide on.
var (
	ErrNotFound     = errors.New("job not found")
	ErrNotRetryable = errors.New("job cannot be retried now")
	ErrStarted      = errors.New("job client already running")
)

// SharedQueue is worked by every node.
const SharedQueue = river.QueueDefault

// Options configures a Client. Zero values take the defaults.
type Options struct {
	DB *store.DB
	// Node names this process among those sharing the database; its local
	// queue is named after it, so it must be stable across restarts
	// (default: the host name).
	Node string
	// Workers bounds the jobs run at once, per queue (default 4).
	Workers int
	// MaxAttempts dead-letters a job after this many failed attempts unless
	// its kind or Enqueue says otherwise (default 8).
	MaxAttempts int
	// Lease is how long a job may run before it is taken to be held by a
	// dead node and retried; an attempt's own timeout is four fifths of
	// it, so a live node gives up first (default 1 minute). River's
	// rescuer looks every 30 s, so a dead node's job waits up to Lease+30s.
	Lease time.Duration
	// Backoff is the wait before retry number attempt (default
	// DefaultBackoff).
	Backoff func(attempt int) time.Duration
	// PollInterval is how often an idle node looks for due jobs; new jobs
	// are also announced through the database (default 1s).
	PollInterval time.Duration
	// StopGrace is how long Run lets running jobs finish once its context
	// ends; then their contexts are cancelled and they go back to the
	// queue without using up an attempt (default 10s).
	StopGrace  time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// riverClient is the part of *river.Client[TTx] used here; it does not
// depend on the driver's transaction type, so one Client serves SQLite and
// Postgres alike.
type riverClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
}

// Client enqueues, lists and retries jobs, and Run works them.
type Client struct {
	opts  Options
	db    *store.DB
	log   *slog.Logger
	met   *metrics
	local string

	workers *river.Workers
	rc      riverClient
	exec    riverdriver.Executor

	mu      sync.Mutex
	kinds   map[string]kindInfo
	running bool
}

type kindInfo struct {
	maxAttempts int
}

// New builds a Client on the store's database. The database must have been
// opened with store.Open, which migrates River's tables. New starts
// nothing: a Client that is never Run can still enqueue, list and retry
// (the CLI does that).
func New(opts Options) (*Client, error) {
	switch {
	case opts.DB == nil:
		return nil, errors.New("jobs: DB is required")
	case opts.Workers < 0 || opts.MaxAttempts < 0 || opts.Lease < 0 || opts.PollInterval < 0 || opts.StopGrace < 0:
		return nil, errors.New("jobs: Workers, MaxAttempts, Lease, PollInterval and StopGrace must not be negative")
	case opts.Lease > 0 && opts.Lease < time.Second:
		return nil, fmt.Errorf("jobs: lease %v is shorter than a second", opts.Lease)
	}
	if opts.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("jobs: node name: %w", err)
		}
		opts.Node = h
	}
	opts.Workers = cmp.Or(opts.Workers, 4)
	opts.MaxAttempts = cmp.Or(opts.MaxAttempts, 8)
	opts.Lease = cmp.Or(opts.Lease, time.Minute)
	opts.PollInterval = cmp.Or(opts.PollInterval, time.Second)
	opts.StopGrace = cmp.Or(opts.StopGrace, 10*time.Second)
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{
		opts: opts, db: opts.DB, log: opts.Logger.With("component", "jobs"), met: newMetrics(),
		local: LocalQueue(opts.Node), workers: river.NewWorkers(), kinds: map[string]kindInfo{},
	}
	cfg := &river.Config{
		ID: clientID(opts.Node),
		Queues: map[string]river.QueueConfig{
			SharedQueue: {MaxWorkers: opts.Workers},
			c.local:     {MaxWorkers: opts.Workers},
		},
		Workers:              c.workers,
		MaxAttempts:          opts.MaxAttempts,
		RescueStuckJobsAfter: opts.Lease,
		JobTimeout:           c.AttemptTimeout(),
		RetryPolicy:          retryPolicy{backoff: opts.Backoff},
		FetchPollInterval:    opts.PollInterval,
		FetchCooldown:        min(river.FetchCooldownDefault, opts.PollInterval),
		// Dead letters stay until someone retries them: they stand for
		// work (a recording's upload) that has not happened.
		DiscardedJobRetentionPeriod: -1,
		CancelledJobRetentionPeriod: -1,
		SoftStopTimeout:             opts.StopGrace,
		Logger:                      slog.New(minLevel{h: c.log.Handler(), min: slog.LevelWarn}),
	}
	jdb, err := opts.DB.JobsDB()
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	switch {
	case jdb.SQLite != nil:
		c.rc, c.exec, err = newRiver(riversqlite.New(jdb.SQLite), cfg)
	case jdb.Postgres != nil:
		c.rc, c.exec, err = newRiver(riverpgxv5.New(jdb.Postgres), cfg)
	default:
		err = errors.New("store gave no database handle")
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	// Registered last: a New that failed leaves the registry as it was.
	if err := c.met.register(opts.Registerer, deadCollector{c: c}); err != nil {
		return nil, err
	}
	return c, nil
}

func newRiver[TTx any](driver riverdriver.Driver[TTx], cfg *river.Config) (riverClient, riverdriver.Executor, error) {
	rc, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, nil, err
	}
	return rc, driver.GetExecutor(), nil
}

var queueRe = regexp.MustCompile(`[^a-z0-9]+`)

// LocalQueue names the queue of jobs only node may work. River allows
// lowercase letters and digits separated by '-' or '_'; a node name that
// had to be changed to fit gets a hash suffix so two nodes never share one.
func LocalQueue(node string) string {
	name := strings.Trim(queueRe.ReplaceAllString(strings.ToLower(node), "-"), "-")
	if len(name) > 40 {
		name = strings.Trim(name[:40], "-")
	}
	if name != node || name == "" {
		name = strings.TrimPrefix(name+"-"+shortHash(node), "-")
	}
	return "node-" + name
}

// clientID names this process in River (attempted_by, leadership): the node
// and a random suffix, since a restarted node is a new client.
func clientID(node string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%.80s-%s", node, hex.EncodeToString(b[:]))
}

// LocalQueue is this node's queue.
func (c *Client) LocalQueue() string { return c.local }

// AttemptTimeout is how long an attempt may run unless its kind says
// otherwise: four fifths of the lease, so a live node gives up on it before
// the lease lets another node take it.
func (c *Client) AttemptTimeout() time.Duration { return c.opts.Lease * 4 / 5 }

// Run works jobs of the shared and the local queue until ctx ends, then
// lets running jobs finish for StopGrace before cancelling them; a
// cancelled job returns to its queue without using up an attempt. Register
// every kind before Run.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return ErrStarted
	}
	if len(c.kinds) == 0 {
		c.mu.Unlock()
		return errors.New("jobs: no job kinds registered")
	}
	c.running = true
	c.mu.Unlock()
	// River stops softly when its start context ends; Stop below does the
	// same with our grace, so River gets a context that never ends.
	if err := c.rc.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	c.log.Info("job queue running", "node", c.opts.Node, "local_queue", c.local, "workers", c.opts.Workers)
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), c.opts.StopGrace+30*time.Second)
	defer cancel()
	if err := c.rc.Stop(stopCtx); err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// minLevel drops River's own records below min: it logs every failed
// attempt at info, and the workers here log those with context already.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min}
}
func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h: m.h.WithGroup(name), min: m.min}
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}
