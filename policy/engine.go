// Package policy decides whether an outbound call may go out, and how every
// call is announced and recorded, from an admin-edited YAML policy file and
// counters kept in the store (so several nodes enforce one limit).
package policy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/store"
)

// Counters is the store side of enforcement: every window, slot, spend and
// suspension lives behind it, so no limit is per process. *store.DB
// implements it; see store/policy.go for the transaction each method is.
type Counters interface {
	PolicyAdmit(ctx context.Context, a store.PolicyAdmission) (store.PolicyVerdict, error)
	PolicyExtend(ctx context.Context, x store.PolicyExtension) (int64, error)
	PolicySettle(ctx context.Context, s store.PolicySettlement) (store.PolicySettled, error)
	PolicyRenew(ctx context.Context, node string, at, until time.Time) (int64, error)
	PolicySweep(ctx context.Context, at time.Time, keep time.Duration) (store.PolicySweepResult, error)
	PolicyAudit(ctx context.Context, tenantID, action, object string, details map[string]any) error
}

var _ Counters = (*store.DB)(nil)

// Options configures NewEngine.
type Options struct {
	// File is the policy YAML; "" serves the built-in defaults (US and CA
	// allowed, high-risk number types refused, announce).
	File string
	// Counters is required.
	Counters   Counters
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	Now        func() time.Time
	// Node names this process's slots; it renews their lease while it runs.
	// Default: hostname and a random suffix.
	Node string
	// Lease is how long a slot outlives its node's last renewal (default
	// 90s); Run renews every third of it.
	Lease time.Duration
	// PollInterval is how often Run checks the file (default 500ms).
	PollInterval time.Duration
	// SweepInterval is how often Run lapses dead slots (default 1m).
	SweepInterval time.Duration
}

// Engine decides calls under the current policy and hot-reloads it.
type Engine struct {
	file     string
	counters Counters
	log      *slog.Logger
	now      func() time.Time
	node     string
	lease    time.Duration
	poll     time.Duration
	sweepInt time.Duration
	m        *metrics

	cur atomic.Pointer[snapshot]

	// reloadMu orders reloads (SIGHUP and the watcher) and guards the
	// watcher's view of the file.
	reloadMu sync.Mutex
	stamp    fileStamp
	// refusedKey names what the watcher last refused (the content's hash,
	// or "missing"/"unreadable"), so one bad state is reported once, not
	// on every poll.
	refusedKey string
}

// emergencyAuditTimeout bounds how long an emergency call waits for its
// audit record; the call passes either way.
const emergencyAuditTimeout = time.Second

// ringAllowance is how long a slot may outlive the longest call before a
// sweep lapses it: the ringing before answer.
const ringAllowance = 10 * time.Minute

// NewEngine loads and validates the policy file, or fails.
func NewEngine(opts Options) (*Engine, error) {
	if opts.Counters == nil {
		return nil, errors.New("policy: Options.Counters is required")
	}
	e := &Engine{file: opts.File, counters: opts.Counters, log: opts.Logger, now: opts.Now, node: opts.Node,
		lease: opts.Lease, poll: opts.PollInterval, sweepInt: opts.SweepInterval}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.log = e.log.With("component", "policy")
	if e.now == nil {
		e.now = time.Now
	}
	if e.lease <= 0 {
		e.lease = 90 * time.Second
	}
	if e.poll <= 0 {
		e.poll = 500 * time.Millisecond
	}
	if e.sweepInt <= 0 {
		e.sweepInt = time.Minute
	}
	if e.node == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		e.node = host + "-" + hex.EncodeToString(b[:])
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("policy metrics: %w", err)
	}
	e.m = m
	warmTerritories()
	if e.file == "" {
		snap, _ := compile("", nil)
		snap.hash = "builtin"
		e.cur.Store(snap)
		e.log.Info("policy: no file configured, serving built-in defaults")
		return e, nil
	}
	if err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Node is the name this engine's slots carry.
func (e *Engine) Node() string { return e.node }

// RetentionDays is how long a tenant keeps its recordings under the policy
// serving now (the retention job asks per tenant name).
func (e *Engine) RetentionDays(tenantName string) int {
	return e.cur.Load().tenant(tenantName).retentionDays
}

// PolicyHash is the hash of the policy serving now.
func (e *Engine) PolicyHash() string { return e.cur.Load().hash }

type fileStamp struct {
	mod  time.Time
	size int64
}

// Reload reads the file again (the SIGHUP path). An invalid file is
// refused, logged and counted; the previous policy keeps serving.
func (e *Engine) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if e.file == "" {
		return nil
	}
	st, data, err := readPolicy(e.file)
	if err != nil {
		e.refused(err, "")
		return err
	}
	e.stamp = st
	return e.apply(data)
}

func readPolicy(path string) (fileStamp, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileStamp{}, nil, fmt.Errorf("read policy: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileStamp{}, nil, fmt.Errorf("read policy: %w", err)
	}
	if fi.Size() > MaxFileSize {
		return fileStamp{}, nil, &Error{File: path, Msg: fmt.Sprintf("file is %d bytes; the limit is %d", fi.Size(), MaxFileSize)}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fileStamp{}, nil, fmt.Errorf("read policy: %w", err)
	}
	if len(data) > MaxFileSize {
		return fileStamp{}, nil, &Error{File: path, Msg: fmt.Sprintf("file grew past %d bytes", MaxFileSize)}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, data, nil
}

// apply compiles data and swaps it in; the caller holds reloadMu.
func (e *Engine) apply(data []byte) error {
	snap, errs := compile(e.file, data)
	if len(errs) > 0 {
		h := hashOf(data)
		e.refused(errs, h)
		return errs
	}
	old := e.cur.Load()
	e.cur.Store(snap)
	e.refusedKey = ""
	e.m.reloads.WithLabelValues("ok").Inc()
	attrs := []any{"file", e.file, "hash", short(snap.hash), "version", snap.version, "tenants", len(snap.tenants), "users", snap.users}
	if old != nil {
		attrs = append(attrs, "previous", short(old.hash))
	}
	e.log.Info("policy loaded", attrs...)
	return nil
}

func (e *Engine) refused(err error, key string) {
	e.refusedKey = key
	e.m.reloads.WithLabelValues("error").Inc()
	serving := "none"
	if cur := e.cur.Load(); cur != nil {
		serving = short(cur.hash)
	}
	e.log.Error("policy file refused; the previous policy keeps serving", "file", e.file, "serving", serving, "err", err)
}

// Run watches the file (a change is picked up within about a second),
// renews this node's slots and sweeps dead ones, until ctx is done.
func (e *Engine) Run(ctx context.Context) error {
	var pollC <-chan time.Time
	if e.file != "" {
		t := time.NewTicker(e.poll)
		defer t.Stop()
		pollC = t.C
	}
	renew := time.NewTicker(e.lease / 3)
	defer renew.Stop()
	sweep := time.NewTicker(e.sweepInt)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-pollC:
			e.watch()
		case <-renew.C:
			e.renew(ctx)
		case <-sweep.C:
			e.sweep(ctx)
		}
	}
}

// watch reloads when the file's content changed. It compares mtime and
// size first, and hashes anyway while the mtime is recent, since two edits
// inside one timestamp tick can leave both unchanged.
func (e *Engine) watch() {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	fi, err := os.Stat(e.file)
	if err != nil {
		if e.refusedKey != "missing" {
			e.refused(fmt.Errorf("watch policy: %w", err), "missing")
		}
		return
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if st == e.stamp && time.Since(st.mod) > 2*time.Second {
		return
	}
	st, data, err := readPolicy(e.file)
	if err != nil {
		if e.refusedKey != "unreadable" {
			e.refused(err, "unreadable")
		}
		return
	}
	e.stamp = st
	h := hashOf(data)
	if h == e.cur.Load().hash || h == e.refusedKey {
		return
	}
	_ = e.apply(data)
}

func (e *Engine) renew(ctx context.Context) {
	now := e.now()
	if _, err := e.counters.PolicyRenew(ctx, e.node, now, now.Add(e.lease)); err != nil && ctx.Err() == nil {
		e.log.Warn("policy: renewing call slots failed; they lapse if this persists", "node", e.node, "err", err)
	}
}

func (e *Engine) sweep(ctx context.Context) {
	res, err := e.counters.PolicySweep(ctx, e.now(), e.cur.Load().maxKeep())
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("policy: sweep failed", "err", err)
		}
		return
	}
	if res.Lapsed > 0 {
		e.log.Warn("policy: lapsed call slots of a silent node; their reservations were charged", "slots", res.Lapsed)
	}
}

func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
