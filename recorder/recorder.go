// Package recorder writes each recorded call into one stereo WAV file (8 kHz,
// 16-bit PCM; left = channel 0, right = channel 1), hashed with SHA-256 while
// it is written, spooled to local disk with periodic fsync, and uploaded to
// object storage by a durable job (store/jobs) whose retries never drop a
// recording.
//
// It consumes RTP packets from media taps through Streams: each Stream maps
// its RTP timeline onto the recording's wall-clock timeline, a small reorder
// buffer absorbs jitter, and loss, hold and silence suppression become
// silence, so both channels stay aligned with the wall clock. recorder knows
// nothing of SIP or of the media relay.
package recorder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// Sentinel errors callers decide on.
var (
	ErrNotRunning = errors.New("recorder is not running")
	ErrClosed     = errors.New("recorder stopped; the recording will be recovered on the next start")
	// ErrAudioMismatch means the spooled audio no longer hashes to what was
	// ingested: it is never uploaded, and its spool is kept for inspection.
	ErrAudioMismatch = errors.New("spooled audio does not match its ingestion hash")
	ErrNotRetryable  = errors.New("recording is not waiting for an upload retry")
	ErrNotLocal      = errors.New("recording's spool is not on this node")
)

// Options configures a Manager.
type Options struct {
	SpoolDir     string
	SyncInterval time.Duration // fsync bound: a kill -9 loses at most about this much audio (default 1s)
	Objects      objects.Store
	DB           *store.DB
	// Jobs runs the uploads: New registers the upload kind, so create the
	// Manager before Jobs.Run. Its Node must be this Node.
	Jobs           *jobs.Client
	UploadAttempts int                             // then dead-letter (default 8)
	Backoff        func(attempt int) time.Duration // nil = exponential with jitter, capped
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	Node           string // default: host name
}

// Channel is one side of the stereo file.
type Channel int

// The two channels: by convention left carries the rep, right the other party.
const (
	Left Channel = iota
	Right
)

// Meta describes a recording at its start.
type Meta struct {
	TenantID  string
	CallID    string
	StartedAt time.Time // origin of the timeline (zero = now)
	Channels  [2]string // what each channel carries, e.g. {"rep", "remote"}
}

// Manager owns the recordings of one node: their writer, their spool and
// their uploads.
type Manager struct {
	opts Options
	log  *slog.Logger
	met  *metrics

	// Tunables; tests in this package shorten them.
	now     func() time.Time
	tick    time.Duration // writer period
	delay   time.Duration // reorder delay: audio is written this long after it is due
	syncers int

	mu      sync.Mutex
	running bool
	closed  bool
	active  map[string]*Recording
	syncQ   chan *Recording
}

// New checks opts and builds a Manager; Run starts it.
func New(opts Options) (*Manager, error) {
	switch {
	case opts.SpoolDir == "":
		return nil, errors.New("recorder: SpoolDir is required")
	case opts.Objects == nil:
		return nil, errors.New("recorder: Objects is required")
	case opts.DB == nil:
		return nil, errors.New("recorder: DB is required")
	case opts.Jobs == nil:
		return nil, errors.New("recorder: Jobs is required")
	case opts.SyncInterval < 0 || opts.UploadAttempts < 0:
		return nil, errors.New("recorder: SyncInterval and UploadAttempts must not be negative")
	}
	if opts.SyncInterval == 0 {
		opts.SyncInterval = time.Second
	}
	if opts.UploadAttempts == 0 {
		opts.UploadAttempts = 8
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("recorder: node name: %w", err)
		}
		opts.Node = h
	}
	if err := os.MkdirAll(opts.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("recorder: spool dir: %w", err)
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	if q := jobs.LocalQueue(opts.Node); q != opts.Jobs.LocalQueue() {
		return nil, fmt.Errorf("recorder: node %q but the job client's local queue is %q: uploads would run where the spool is not", opts.Node, opts.Jobs.LocalQueue())
	}
	m := &Manager{
		opts: opts, log: opts.Logger.With("component", "recorder"), met: met,
		now: time.Now, tick: 40 * time.Millisecond, delay: reorderDelay, syncers: 8,
		active: map[string]*Recording{},
	}
	if err := m.registerUploads(); err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	return m, nil
}

// DefaultBackoff waits 1s, 2s, 4s, ... up to 5 minutes, each with up to
// half of it as random jitter, so retries from many recordings spread out.
func DefaultBackoff(attempt int) time.Duration { return jobs.DefaultBackoff(attempt) }

// Run recovers spool files left by an earlier run (each is finalised, marked
// truncated unless it had finished, and queued for upload: it is stored and
// recorded exactly once), then writes recordings until ctx is done. Uploads
// run as jobs of the Jobs client, which the caller runs. On return every
// active recording has been flushed and synced; the next Run recovers it.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running || m.closed {
		m.mu.Unlock()
		return errors.New("recorder: Run called twice")
	}
	m.mu.Unlock()

	// Snapshot leftovers before any new recording can start, so recovery
	// never mistakes a live spool for an abandoned one.
	leftovers, err := m.scanSpool()
	if err != nil {
		return err
	}
	pending, err := m.opts.DB.PendingRecordings(ctx, m.opts.Node)
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}

	m.mu.Lock()
	m.running = true
	m.syncQ = make(chan *Recording, 1024)
	m.mu.Unlock()

	var syncWG sync.WaitGroup
	for range m.syncers {
		syncWG.Go(m.syncWorker)
	}
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); m.writeLoop(ctx.Done()) }()

	if err := m.recover(ctx, leftovers, pending); err != nil && ctx.Err() == nil {
		m.log.Error("recovery incomplete; remaining spools are retried on the next start", "err", err)
	}

	<-ctx.Done()
	<-writerDone
	m.mu.Lock()
	m.closed = true
	active := make([]*Recording, 0, len(m.active))
	for _, r := range m.active {
		active = append(active, r)
	}
	m.mu.Unlock()
	for _, r := range active {
		if r.suspend() {
			m.met.active.Dec()
		}
	}
	close(m.syncQ)
	syncWG.Wait()
	return nil
}

func (m *Manager) scanSpool() ([]string, error) {
	entries, err := os.ReadDir(m.opts.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("recorder: read spool dir: %w", err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
		case filepath.Ext(name) == spoolSuffix:
			out = append(out, filepath.Join(m.opts.SpoolDir, name))
		case len(name) > len(tmpSuffix) && name[len(name)-len(tmpSuffix):] == tmpSuffix:
			// Crashed while creating: no row was written yet (rows follow
			// the rename), so there is nothing to recover.
			if err := os.Remove(filepath.Join(m.opts.SpoolDir, name)); err != nil {
				m.log.Warn("remove half-created spool", "file", name, "err", err)
			}
		}
	}
	return out, nil
}

// Start opens a recording: its spool file exists and its row (state
// "recording") is committed before Start returns, so no audio can exist
// without both.
func (m *Manager) Start(ctx context.Context, meta Meta) (*Recording, error) {
	if meta.TenantID == "" || meta.CallID == "" {
		return nil, errors.New("start recording: tenant and call id are required")
	}
	for _, c := range meta.Channels {
		if len(c) > 64 {
			return nil, fmt.Errorf("start recording: channel name of %d bytes (max 64)", len(c))
		}
	}
	m.mu.Lock()
	running, closed := m.running, m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if !running {
		return nil, ErrNotRunning
	}
	now := m.now()
	started := meta.StartedAt
	if started.IsZero() || started.After(now) {
		started = now
	}
	// t0 carries now's monotonic reading, so positions never jump with
	// wall-clock steps.
	t0 := now.Add(-now.Sub(started))
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("start recording: %w", err)
	}
	var secret [16]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, fmt.Errorf("start recording: %w", err)
	}
	u := started.UTC()
	key := fmt.Sprintf("tenants/%s/recordings/%04d/%02d/%s.wav", meta.TenantID, u.Year(), int(u.Month()), hex.EncodeToString(secret[:]))
	if err := objects.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("start recording: tenant id %q: %w", meta.TenantID, err)
	}
	sm := spoolMeta{Version: 1, ID: id.String(), TenantID: meta.TenantID, CallID: meta.CallID, ObjectKey: key,
		Node: m.opts.Node, StartedAtMS: started.UnixMilli(), Channels: meta.Channels, SampleRate: SampleRate}
	f, path, err := createSpool(m.opts.SpoolDir, sm, now)
	if err != nil {
		m.met.spoolErrors.Inc()
		return nil, fmt.Errorf("start recording: %w", err)
	}
	scope := m.opts.DB.In(store.System(meta.TenantID))
	_, _, err = scope.CreateRecording(ctx, store.Recording{
		ID: sm.ID, CallID: meta.CallID, ObjectKey: key, Channels: meta.Channels[:], Codec: codecName, SampleRate: SampleRate,
		Node: m.opts.Node, SpoolPath: path, StartedAt: started,
	})
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("start recording for call %s: %w", meta.CallID, err)
	}
	meta.StartedAt = started
	r := m.newRecording(sm.ID, meta, key, scope, t0, f, path)
	// A timeline that began before now (StartedAt in the past) starts with
	// silence; write it now, so the first packets find the writer where
	// the ticker keeps it.
	r.wmu.Lock()
	r.emitTo(r.posAt(now) - int64(m.delay)/nsPerSample)
	r.wmu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		r.suspend()
		return nil, ErrClosed
	}
	m.active[r.id] = r
	m.mu.Unlock()
	m.met.active.Inc()
	m.log.Info("recording started", "recording", r.id, "call", meta.CallID, "tenant", meta.TenantID)
	return r, nil
}

func (m *Manager) newRecording(id string, meta Meta, key string, scope *store.Scope, t0 time.Time, f *os.File, path string) *Recording {
	return &Recording{
		m: m, id: id, meta: meta, key: key, scope: scope, t0: t0,
		f: f, path: path, hash: newHash(), staging: make([]byte, 0, stagingBytes), lastSync: m.now(),
	}
}

// Recording is one call's recording in progress.
type Recording struct {
	m     *Manager
	id    string
	meta  Meta
	key   string
	scope *store.Scope
	t0    time.Time

	smu     sync.Mutex
	streams []*Stream
	emitted atomic.Int64 // the writer's cursor, for streams created later

	// Writer state, guarded by wmu.
	wmu      sync.Mutex
	f        *os.File
	path     string
	cursor   int64 // frames emitted
	written  int64 // PCM bytes written to the spool
	hash     hash.Hash
	staging  []byte
	acc      [2][chunkFrames]int32
	lastSync time.Time
	seq      uint64
	done     bool
	full     bool
	werr     error
	state    []byte

	// A periodic checkpoint handed to a sync worker.
	syncing    atomic.Bool
	syncFailed atomic.Bool
	syncWG     sync.WaitGroup
	ckpt       [slotSize]byte
	ckptOff    int64

	closing bool // under smu: no new streams

	finMu   sync.Mutex
	finDone bool
	endedAt time.Time
}

// ID is the recording's id (its row's primary key).
func (r *Recording) ID() string { return r.id }

// ObjectKey is where the recording will be stored.
func (r *Recording) ObjectKey() string { return r.key }

const nsPerSample = int64(time.Second) / SampleRate

// posAt is the timeline position (in samples) of instant t.
func (r *Recording) posAt(t time.Time) int64 { return int64(t.Sub(r.t0)) / nsPerSample }

// Stream adds an input mixed into ch. It panics on a channel other than Left
// or Right: that is a programming error.
func (r *Recording) Stream(ch Channel) *Stream {
	if ch != Left && ch != Right {
		panic(fmt.Sprintf("recorder: no channel %d", ch))
	}
	s := newStream(r, ch)
	s.cursor = r.emitted.Load()
	r.smu.Lock()
	defer r.smu.Unlock()
	if r.closing {
		s.closed = true
		return s
	}
	r.streams = append(r.streams, s)
	return s
}

// Finish stops the recording, writes what is buffered (the tail is aligned
// to the end time), makes it durable and queues the upload. It completes
// even when ctx is already cancelled (a call's context usually ends with the
// call); ctx bounds only the metadata update. Idempotent.
func (r *Recording) Finish(ctx context.Context) error {
	r.finMu.Lock()
	defer r.finMu.Unlock()
	if r.finDone {
		return nil
	}
	m := r.m
	if r.endedAt.IsZero() {
		r.endedAt = m.now()
		r.smu.Lock()
		r.closing = true
		r.smu.Unlock()
	}
	end := r.posAt(r.endedAt)
	hi := int64(0)
	for _, s := range r.snapshotStreams() {
		hi = max(hi, s.close())
	}
	// Audio placed a little past the end (jitter) is kept.
	end = max(end, min(hi, end+driftAhead))

	m.mu.Lock()
	delete(m.active, r.id)
	m.mu.Unlock()

	cand, err := r.finalize(end)
	if errors.Is(err, errSuspended) {
		return ErrClosed
	}
	if err != nil {
		// Stays registered nowhere but retryable: a later Finish tries
		// the write and sync again.
		return fmt.Errorf("finish recording %s: %w", r.id, err)
	}
	r.finDone = true
	m.met.active.Dec()

	dur := durationOf(cand.Data)
	dbctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		dbctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
	}
	if err := r.scope.MarkUploading(dbctx, r.id, store.RecordingEnd{EndedAt: r.endedAt, Duration: dur}); err != nil {
		// The spool is durable and the upload records everything again
		// when it stores the recording.
		m.log.Warn("recording finished but its row was not updated", "recording", r.id, "err", err)
	}
	if err := m.enqueueUpload(dbctx, r.scope, r.id, objectSize(cand), 0); err != nil {
		// The spool is durable: the next start of this node finds it and
		// queues the upload.
		m.log.Error("recording finished but its upload could not be queued; the next start queues it", "recording", r.id, "err", err)
	}
	m.log.Info("recording finished", "recording", r.id, "call", r.meta.CallID, "duration", dur)
	return nil
}

func (r *Recording) snapshotStreams() []*Stream {
	r.smu.Lock()
	defer r.smu.Unlock()
	return append([]*Stream(nil), r.streams...)
}

func durationOf(dataBytes int64) time.Duration {
	return time.Duration(dataBytes/frameBytes) * time.Second / SampleRate
}

// reorderDelay is how long audio waits before it is placed for good: the
// jitter a packet may have and still land in its slot. Recordings are
// evidence, not a live stream, so it is generous: a loaded host that delays
// a relay goroutine must not punch holes in them. The stream ring (512 ms)
// holds it plus a writer tick and the longest packet.
const reorderDelay = 200 * time.Millisecond
