package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/blackbox-gw/blackbox/recorder/wavcheck"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// toneCall records a real-time call: 440 Hz PCMU from the rep on the left,
// 1 kHz PCMA from the remote party on the right, with loss, reordering and
// a duplicate, paced at 20 ms. It returns the recording and how long the
// call lasted from Start until Finish was called.
func toneCall(t *testing.T, m *Manager, tenant string, d time.Duration, during func(elapsed time.Duration)) (*Recording, time.Duration) {
	t.Helper()
	ctx := context.Background()
	began := time.Now()
	rec, err := m.Start(ctx, Meta{TenantID: tenant, CallID: "call-" + hex.EncodeToString([]byte(t.Name()))[:8], Channels: [2]string{"rep", "remote"}})
	if err != nil {
		t.Fatal(err)
	}
	left, right := rec.Stream(Left), rec.Stream(Right)
	ls, rs := newSender(payloadPCMU, 1111, 440), newSender(payloadPCMA, 2222, 1000)
	rng := rand.New(rand.NewPCG(1, 2))
	n := int(d / (20 * time.Millisecond))
	next := time.Now()
	for k := 0; k < n; k++ {
		lh, lp := ls.next()
		rh, rp := rs.next()
		switch {
		case rng.Float64() < 0.03: // lost
		case k%25 == 7: // held back one packet time: arrives after its successor
			held, payload := *lh, append([]byte(nil), lp...)
			time.Sleep(time.Until(next))
			next = next.Add(20 * time.Millisecond)
			k++
			lh2, lp2 := ls.next()
			left.RTP(lh2, lp2, time.Now())
			left.RTP(&held, payload, time.Now())
			rh2, rp2 := rs.next()
			right.RTP(rh, rp, time.Now())
			right.RTP(rh2, rp2, time.Now())
			continue
		case k == 40:
			left.RTP(lh, lp, time.Now())
			left.RTP(lh, lp, time.Now()) // duplicate
		default:
			left.RTP(lh, lp, time.Now())
		}
		right.RTP(rh, rp, time.Now())
		if during != nil {
			during(time.Since(began))
		}
		next = next.Add(20 * time.Millisecond)
		time.Sleep(time.Until(next))
	}
	// The call ends when Finish is called; Finish's own time (fsync, row,
	// upload job) is not audio.
	callLen := time.Since(began)
	if err := rec.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	return rec, callLen
}

// checkTones asserts the stored recording is the tone call: right tones on
// the right channels, the right length, and hashes that match the row.
func checkTones(t *testing.T, objs objects.Store, row store.Recording, callLen time.Duration) {
	t.Helper()
	raw, w := readObject(t, objs, row.ObjectKey)
	if w.Channels != 2 || w.SampleRate != SampleRate || w.DataOffset != wavHeaderSize {
		t.Fatalf("wav format %d ch %d Hz, data at %d", w.Channels, w.SampleRate, w.DataOffset)
	}
	if diff := w.Duration() - callLen; diff < -100*time.Millisecond || diff > 100*time.Millisecond {
		t.Fatalf("recording lasts %v, call lasted %v", w.Duration(), callLen)
	}
	if d := w.Duration() - row.Duration; d < 0 || d >= time.Millisecond { // the row keeps whole milliseconds
		t.Fatalf("row says %v, file %v", row.Duration, w.Duration())
	}
	l, r := w.Channel(0), w.Channel(1)
	for _, c := range []struct {
		name string
		x    []int16
		on   float64
		off  float64
	}{{"left", l, 440, 1000}, {"right", r, 1000, 440}} {
		// Whole-file coherence: only holds if every packet sits exactly
		// where its timestamp says; loss (3%) and edges lower it a little.
		if s := wavcheck.ToneShare(c.x, SampleRate, c.on); s < 0.85 {
			t.Errorf("%s channel: %.0f Hz carries %.2f of the power, want >= 0.85", c.name, c.on, s)
		}
		if s := wavcheck.ToneShare(c.x, SampleRate, c.off); s > 0.01 {
			t.Errorf("%s channel: %.0f Hz leaks in (%.3f)", c.name, c.off, s)
		}
	}
	checkSHA(t, raw, row)
}

// checkSHA asserts the row's hashes and size describe the object.
func checkSHA(t *testing.T, raw []byte, row store.Recording) {
	t.Helper()
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != row.SHA256 {
		t.Fatalf("object sha256 %x, row says %s", sum, row.SHA256)
	}
	audio := sha256.Sum256(raw[wavHeaderSize:])
	if hex.EncodeToString(audio[:]) != row.AudioSHA256 {
		t.Fatalf("audio sha256 %x, row says %s", audio, row.AudioSHA256)
	}
	if row.SizeBytes != int64(len(raw)) {
		t.Fatalf("row size %d, object %d", row.SizeBytes, len(raw))
	}
}

func TestToneRecording(t *testing.T) {
	e := newEnv(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m := e.manager(t, nil)
	stop := run(t, m)
	rec, callLen := toneCall(t, m, e.tenantA, 3*time.Second, nil)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 10*time.Second)
	checkTones(t, e.objs, row, callLen)
	if row.Truncated || row.Attempts != 1 || row.Codec != "pcm_s16le" || row.SampleRate != 8000 ||
		row.Channels[0] != "rep" || row.Channels[1] != "remote" || row.EndedAt.IsZero() || row.Node != "n1" {
		t.Fatalf("row %+v", row)
	}
	if _, err := os.Stat(rec.path); !os.IsNotExist(err) {
		t.Fatalf("spool kept after a successful upload: %v", err)
	}
	if _, err := e.scopeB.Recording(context.Background(), rec.ID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tenant B sees the recording: %v", err)
	}
	if err := rec.Finish(context.Background()); err != nil {
		t.Fatalf("second Finish: %v", err)
	}
	if got := metricValue(m.met.uploadsOK); got != 1 {
		t.Fatalf("uploads ok = %v", got)
	}
	if got := metricValue(m.met.active); got != 0 {
		t.Fatalf("active = %v", got)
	}
	if got := metricValue(m.met.bytes); got != float64(row.SizeBytes-wavHeaderSize) {
		t.Fatalf("bytes metric %v, data %d", got, row.SizeBytes-wavHeaderSize)
	}
	if fams, err := e.registry.Gather(); err != nil || len(fams) < 5 {
		t.Fatalf("registered metric families: %d %v", len(fams), err)
	}
	mm, err := Verify(context.Background(), e.db, e.objs, e.scopeA, "")
	if err != nil || len(mm) != 0 {
		t.Fatalf("verify: %v %v", mm, err)
	}
	stop()
}

func TestStartFinishEdges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := e.manager(t, nil)
	if _, err := m.Start(ctx, Meta{TenantID: e.tenantA, CallID: "c"}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("start before Run: %v", err)
	}
	stop := run(t, m)
	if err := m.Run(ctx); err == nil {
		t.Fatal("a second concurrent Run was accepted")
	}
	for name, meta := range map[string]Meta{
		"no call":        {TenantID: e.tenantA},
		"no tenant":      {CallID: "c"},
		"unknown tenant": {TenantID: "0190c0de-0000-7000-8000-000000000000", CallID: "c"},
		"bad tenant id":  {TenantID: "../x", CallID: "c"},
	} {
		if _, err := m.Start(ctx, meta); err == nil {
			t.Errorf("%s: started", name)
		}
	}
	if left, _ := os.ReadDir(e.spool); len(left) != 0 {
		t.Fatalf("failed starts left spool files: %v", left)
	}
	// StartedAt in the past: the timeline begins there, with silence.
	rec, err := m.Start(ctx, Meta{TenantID: e.tenantA, CallID: "c", StartedAt: time.Now().Add(-2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	s := rec.Stream(Right)
	snd := newSender(payloadPCMU, 1, 1000)
	feed(s, snd, 10)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := rec.Finish(cctx); err != nil { // a cancelled context still finishes
		t.Fatal(err)
	}
	h, p := snd.next()
	s.RTP(h, p, time.Now()) // after Finish: ignored, no panic
	if late := rec.Stream(Left); late == nil {
		t.Fatal("Stream after Finish returned nil")
	}
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 10*time.Second)
	if row.Duration < 2200*time.Millisecond || row.Duration > 2600*time.Millisecond {
		t.Fatalf("duration %v, want ~2.4s from the past start", row.Duration)
	}
	stop()
	if _, err := m.Start(ctx, Meta{TenantID: e.tenantA, CallID: "c"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("start after stop: %v", err)
	}
}

// TestAbandonedRecordingRecovered: a recording never finished (the process
// stopped mid-call) is recovered by the next Run exactly once, truncated,
// with a valid hash.
func TestAbandonedRecordingRecovered(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m1 := e.manager(t, nil)
	stop1 := run(t, m1)
	rec, err := m1.Start(ctx, Meta{TenantID: e.tenantA, CallID: "abandoned", Channels: [2]string{"rep", "remote"}})
	if err != nil {
		t.Fatal(err)
	}
	feed(rec.Stream(Left), newSender(payloadPCMU, 9, 440), 40)
	stop1() // no Finish
	if err := rec.Finish(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Finish after the manager stopped: %v", err)
	}
	if r, _ := e.scopeA.Recording(ctx, rec.ID()); r.State != store.RecordingActive {
		t.Fatalf("state before recovery: %s", r.State)
	}

	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m2 := e.manager(t, nil)
	stop2 := run(t, m2)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 10*time.Second)
	if !row.Truncated || row.Duration < 700*time.Millisecond || row.Duration > 1100*time.Millisecond {
		t.Fatalf("recovered row: truncated=%v duration=%v", row.Truncated, row.Duration)
	}
	raw, w := readObject(t, e.objs, row.ObjectKey)
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != row.SHA256 {
		t.Fatal("recovered object hash differs from the row")
	}
	if s := wavcheck.BlockToneShare(w.Channel(0), SampleRate, 440, 400); s < 0.9 {
		t.Fatalf("recovered audio is not the tone: %.2f", s)
	}
	if got := metricValue(m2.met.recovered); got != 1 {
		t.Fatalf("recovered = %v", got)
	}
	stop2()
	expectNothingToRecover(t, e, row)
	if list, _ := e.scopeA.Recordings(ctx, store.RecordingFilter{}); len(list) != 1 {
		t.Fatalf("%d rows", len(list))
	}
}

func TestUploadRetriesThenStoresOnce(t *testing.T) {
	e := newEnv(t)
	flaky := &flakyStore{Store: e.objs, failPuts: 2}
	m := e.manager(t, func(o *Options) { o.Objects = flaky; o.UploadAttempts = 5 })
	run(t, m)
	rec, callLen := toneCall(t, m, e.tenantA, time.Second, nil)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 10*time.Second)
	checkTones(t, e.objs, row, callLen)
	if row.Attempts != 3 || flaky.putCount() != 3 {
		t.Fatalf("attempts %d, puts %d", row.Attempts, flaky.putCount())
	}
	if metricValue(m.met.uploadsErr) != 2 || metricValue(m.met.uploadsOK) != 1 || metricValue(m.met.deadLettered) != 0 {
		t.Fatal("upload metrics wrong")
	}
}

// TestUploadIdempotent: the object reached the store but the attempt failed
// after (crash or error before the row was updated): the retry writes the
// same key with the same bytes, one object, one row.
func TestUploadIdempotent(t *testing.T) {
	e := newEnv(t)
	flaky := &flakyStore{Store: e.objs, failStats: 1}
	m := e.manager(t, func(o *Options) { o.Objects = flaky })
	run(t, m)
	rec, callLen := toneCall(t, m, e.tenantA, time.Second, nil)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 10*time.Second)
	checkTones(t, e.objs, row, callLen)
	if flaky.putCount() != 2 || row.Attempts != 2 {
		t.Fatalf("puts %d attempts %d", flaky.putCount(), row.Attempts)
	}
	entries, _ := os.ReadDir(e.dir + "/objects/tenants/" + e.tenantA + "/recordings/" + row.StartedAt.Format("2006/01"))
	if len(entries) != 1 {
		t.Fatalf("%d objects for one recording", len(entries))
	}
}

func TestDeadLetterKeepsSpoolAndRetrySucceeds(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	flaky := &flakyStore{Store: e.objs, failPuts: -1}
	m := e.manager(t, func(o *Options) { o.Objects = flaky })
	stop := run(t, m)
	rec, callLen := toneCall(t, m, e.tenantA, time.Second, nil)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingFailed, 10*time.Second)
	if row.Attempts != 3 || row.LastError == "" || metricValue(m.met.deadLettered) != 1 {
		t.Fatalf("dead-lettered row %+v, metric %v", row, metricValue(m.met.deadLettered))
	}
	if _, err := os.Stat(rec.path); err != nil {
		t.Fatalf("spool of a failed recording must be kept: %v", err)
	}
	failed, _ := e.scopeA.Recordings(ctx, store.RecordingFilter{Failed: true})
	if len(failed) != 1 {
		t.Fatalf("failed list: %v", failed)
	}
	if err := m.Retry(ctx, e.scopeB, rec.ID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tenant B retries A's recording: %v", err)
	}
	flaky.set(0)
	if err := m.Retry(ctx, e.scopeA, rec.ID()); err != nil {
		t.Fatal(err)
	}
	row = waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 10*time.Second)
	checkTones(t, e.objs, row, callLen)
	if err := m.Retry(ctx, e.scopeA, rec.ID()); !errors.Is(err, ErrNotRetryable) {
		t.Fatalf("retry of a stored recording: %v", err)
	}
	if _, err := os.Stat(rec.path); !os.IsNotExist(err) {
		t.Fatalf("spool kept after the retry stored it: %v", err)
	}
	stop()
}

// TestDeadLetterRetriedOnRestart: the outage outlasts every attempt; after
// a restart with the store back, the recording is stored.
func TestDeadLetterRetriedOnRestart(t *testing.T) {
	e := newEnv(t)
	flaky := &flakyStore{Store: e.objs, failPuts: -1}
	m1 := e.manager(t, func(o *Options) { o.Objects = flaky })
	stop1 := run(t, m1)
	rec, callLen := toneCall(t, m1, e.tenantA, time.Second, nil)
	waitState(t, e.scopeA, rec.ID(), store.RecordingFailed, 10*time.Second)
	stop1()
	m2 := e.manager(t, nil)
	run(t, m2)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 10*time.Second)
	checkTones(t, e.objs, row, callLen)
	if row.Truncated {
		t.Fatal("a finished recording retried after restart must not be truncated")
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := e.manager(t, nil)
	run(t, m)
	a, _ := toneCall(t, m, e.tenantA, 500*time.Millisecond, nil)
	b, _ := toneCall(t, m, e.tenantB, 500*time.Millisecond, nil)
	ra := waitState(t, e.scopeA, a.ID(), store.RecordingStored, 10*time.Second)
	rb := waitState(t, e.scopeB, b.ID(), store.RecordingStored, 10*time.Second)

	raw, _ := readObject(t, e.objs, ra.ObjectKey)
	raw[len(raw)-1] ^= 1
	if err := e.objs.Put(ctx, ra.ObjectKey, bytes.NewReader(raw), int64(len(raw)), objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	mm, err := Verify(ctx, e.db, e.objs, e.scopeA, "")
	if err != nil || len(mm) != 1 || mm[0].RecordingID != ra.ID || mm[0].Want != ra.SHA256 || mm[0].Got == "" || mm[0].Got == ra.SHA256 {
		t.Fatalf("tampered object: %+v %v", mm, err)
	}
	if mm, _ := Verify(ctx, e.db, e.objs, e.scopeB, ""); len(mm) != 0 {
		t.Fatalf("tenant B's recording reported: %+v", mm)
	}
	if err := e.objs.Delete(ctx, rb.ObjectKey); err != nil {
		t.Fatal(err)
	}
	mm, err = Verify(ctx, e.db, e.objs, nil, "")
	if err != nil || len(mm) != 2 {
		t.Fatalf("all tenants: %+v %v", mm, err)
	}
	for _, x := range mm {
		if x.RecordingID == rb.ID && !errors.Is(x.Err, objects.ErrNotFound) {
			t.Fatalf("missing object: %+v", x)
		}
	}
	if mm, _ := Verify(ctx, e.db, e.objs, e.scopeA, "no-such-call"); len(mm) != 0 {
		t.Fatalf("call filter: %+v", mm)
	}
}

func TestDefaultBackoff(t *testing.T) {
	prev := time.Duration(0)
	for a := 1; a <= 20; a++ {
		d := DefaultBackoff(a)
		if d <= 0 || d > 5*time.Minute {
			t.Fatalf("attempt %d: %v", a, d)
		}
		nominal := min(time.Second<<min(a-1, 9), 5*time.Minute)
		if d < nominal/2 || d > nominal {
			t.Fatalf("attempt %d: %v outside [%v, %v]", a, d, nominal/2, nominal)
		}
		prev = max(prev, d)
	}
	if prev < 150*time.Second {
		t.Fatalf("backoff never grows: max %v", prev)
	}
}

// TestConcurrentRecordings runs many calls at once through one Manager:
// each file carries its own call's tones, none bleeds into another.
const nsPerSampleDur = time.Second / SampleRate

func TestConcurrentRecordings(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t, nil)
	run(t, m)
	const calls = 24
	type result struct {
		id       string
		freq     float64
		duration time.Duration
		silent   time.Duration // Start's own time: no packet can arrive before it returns
	}
	results := make(chan result, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			freq := 300 + 50*float64(i)
			began := time.Now() // the timeline starts inside Start
			rec, err := m.Start(context.Background(), Meta{TenantID: e.tenantA, CallID: fmt.Sprintf("call-%d", i)})
			if err != nil {
				t.Error(err)
				return
			}
			silent := time.Since(began)
			feed(rec.Stream(Left), newSender(payloadPCMU, uint32(i+1), freq), 50)
			// The call ends when Finish is called; Finish then waits for
			// the database (row, upload job), which 24 calls share.
			callLen := time.Since(began)
			if err := rec.Finish(context.Background()); err != nil {
				t.Error(err)
			}
			results <- result{rec.ID(), freq, callLen, silent}
		})
	}
	wg.Wait()
	close(results)
	for r := range results {
		row := waitState(t, e.scopeA, r.id, store.RecordingStored, 20*time.Second)
		raw, w := readObject(t, e.objs, row.ObjectKey)
		checkSHA(t, raw, row)
		// 24 Starts share one database writer (with the job queue): the
		// later ones return after some silence has rightly been recorded.
		left := w.Channel(0)
		left = left[min(len(left), int(r.silent/nsPerSampleDur)):]
		if s := wavcheck.BlockToneShare(left, SampleRate, r.freq, 400); s < 0.9 {
			t.Errorf("call at %.0f Hz: share %.2f", r.freq, s)
		}
		if s := wavcheck.BlockToneShare(left, SampleRate, r.freq+50, 400); s > 0.05 {
			t.Errorf("call at %.0f Hz carries %.0f Hz (%.2f)", r.freq, r.freq+50, s)
		}
		if d := w.Duration() - r.duration; d < -100*time.Millisecond || d > 100*time.Millisecond {
			t.Errorf("call at %.0f Hz: %v of audio for %v", r.freq, w.Duration(), r.duration)
		}
	}
	if got := metricValue(m.met.active); got != 0 {
		t.Fatalf("active gauge %v", got)
	}
}
