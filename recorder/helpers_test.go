package recorder

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/zaf/g711"

	"github.com/blackbox-gw/blackbox/recorder/wavcheck"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
	"github.com/blackbox-gw/blackbox/store/objects"
	"github.com/blackbox-gw/blackbox/store/storetest"
)

// env is a database with two tenants, an object store and a spool dir.
type env struct {
	db       *store.DB
	dir      string
	spool    string
	objs     objects.Store
	tenantA  string
	tenantB  string
	scopeA   *store.Scope
	scopeB   *store.Scope
	registry *prometheus.Registry
}

func newEnv(t testing.TB) *env { return openEnv(t, t.TempDir()) }

// openEnv opens (creating on first use) the database, object store and
// spool of dir, with tenants acme and globex.
func openEnv(t testing.TB, dir string) *env {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t, "sqlite:"+filepath.Join(dir, "bb.db"), store.Options{})
	ta, tb := storetest.TwoTenants(t, db)
	objs, err := objects.Open(ctx, "file:"+filepath.Join(dir, "objects"), objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, dir: dir, spool: filepath.Join(dir, "spool"), objs: objs, tenantA: ta.ID, tenantB: tb.ID,
		scopeA: db.In(store.System(ta.ID)), scopeB: db.In(store.System(tb.ID))}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// manager builds a Manager on e, with its own job client, with fast test
// settings; mod may adjust the options.
func (e *env) manager(t testing.TB, mod func(*Options)) *Manager {
	t.Helper()
	e.registry = prometheus.NewRegistry()
	opts := Options{
		SpoolDir: e.spool, SyncInterval: 100 * time.Millisecond, Objects: e.objs, DB: e.db, UploadAttempts: 3,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }, Logger: testLogger(t), Registerer: e.registry, Node: "n1",
	}
	if mod != nil {
		mod(&opts)
	}
	jc, err := jobs.New(jobs.Options{DB: e.db, Node: opts.Node, PollInterval: 100 * time.Millisecond, StopGrace: 5 * time.Second,
		Logger: opts.Logger, Registerer: e.registry})
	if err != nil {
		t.Fatal(err)
	}
	opts.Jobs = jc
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run starts m.Run and its job client's Run and returns a stop function
// that ends both and waits.
func run(t *testing.T, m *Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- m.Run(ctx) }()
	go func() { done <- m.opts.Jobs.Run(ctx) }()
	// Start is refused until Run is past its snapshot.
	deadline := time.Now().Add(5 * time.Second)
	for !m.isRunning() {
		if time.Now().After(deadline) {
			t.Fatal("Run did not start")
		}
		time.Sleep(time.Millisecond)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			for range 2 {
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (m *Manager) isRunning() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running
}

// waitState polls a recording's row until it reaches state.
func waitState(t *testing.T, s *store.Scope, id string, state store.RecordingState, within time.Duration) store.Recording {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := s.Recording(context.Background(), id)
		if err == nil && r.State == state {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording %s: state %q (err %v), want %q within %v", id, r.State, err, state, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sender generates a G.711 RTP stream of a tone.
type sender struct {
	pt     uint8
	ssrc   uint32
	seq    uint16
	ts     uint32
	freq   float64
	sample int
	hdr    rtp.Header
	buf    []byte
}

func newSender(pt uint8, ssrc uint32, freq float64) *sender {
	return &sender{pt: pt, ssrc: ssrc, seq: uint16(ssrc), ts: ssrc * 7, freq: freq, buf: make([]byte, 160)}
}

// next returns the next 20 ms packet. The payload is reused.
func (s *sender) next() (*rtp.Header, []byte) {
	pcm := wavcheck.Tone(s.freq, SampleRate, s.sample, 160, 0.5)
	for i, v := range pcm {
		if s.pt == payloadPCMA {
			s.buf[i] = g711.EncodeAlawFrame(v)
		} else {
			s.buf[i] = g711.EncodeUlawFrame(v)
		}
	}
	s.hdr = rtp.Header{Version: 2, PayloadType: s.pt, SequenceNumber: s.seq, Timestamp: s.ts, SSRC: s.ssrc}
	s.seq++
	s.ts += 160
	s.sample += 160
	return &s.hdr, s.buf
}

// feed sends n packets of snd into s, paced in real time.
func feed(s *Stream, snd *sender, n int) {
	for range n {
		h, p := snd.next()
		s.RTP(h, p, time.Now())
		time.Sleep(20 * time.Millisecond)
	}
}

// expectNothingToRecover runs one more manager and checks the stored row
// is left exactly as it was: recovery happens once.
func expectNothingToRecover(t *testing.T, e *env, row store.Recording) {
	t.Helper()
	m := e.manager(t, nil)
	stop := run(t, m)
	time.Sleep(200 * time.Millisecond)
	stop()
	again, err := e.scopeA.Recording(context.Background(), row.ID)
	if err != nil || metricValue(m.met.recovered) != 0 || again.SHA256 != row.SHA256 || again.Attempts != row.Attempts || again.State != row.State {
		t.Fatalf("recovered more than once: %+v (%v)", again, err)
	}
}

// readObject fetches and decodes a stored recording.
func readObject(t *testing.T, objs objects.Store, key string) ([]byte, *WAV) {
	t.Helper()
	rc, err := objs.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ReadWAV(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return raw, w
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// flakyStore fails Put (and optionally Stat) while its counters say so.
type flakyStore struct {
	objects.Store
	mu        sync.Mutex
	failPuts  int // -1: forever
	failStats int
	puts      int
}

var errOutage = errors.New("object store outage (test)")

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64, o objects.PutOptions) error {
	f.mu.Lock()
	f.puts++
	fail := f.failPuts != 0
	if f.failPuts > 0 {
		f.failPuts--
	}
	f.mu.Unlock()
	if fail {
		return errOutage
	}
	return f.Store.Put(ctx, key, r, size, o)
}

func (f *flakyStore) Stat(ctx context.Context, key string) (objects.Info, error) {
	f.mu.Lock()
	fail := f.failStats > 0
	if fail {
		f.failStats--
	}
	f.mu.Unlock()
	if fail {
		return objects.Info{}, errOutage
	}
	return f.Store.Stat(ctx, key)
}

func (f *flakyStore) set(failPuts int) {
	f.mu.Lock()
	f.failPuts = failPuts
	f.mu.Unlock()
}

func (f *flakyStore) putCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}
