package recorder

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// BenchmarkFramePair is the steady-state cost of 20 ms of a call: one PCMU
// packet on the left, one PCMA packet on the right, and the writer's share
// (mix, interleave, hash, spool write) for those 160 frames.
func BenchmarkFramePair(b *testing.B) {
	benchFramePair(b, 0)
}

// BenchmarkFramePairWithSync adds a checkpoint and fsync every second of
// audio (SyncInterval 1s), as on a real node.
func BenchmarkFramePairWithSync(b *testing.B) {
	benchFramePair(b, 50)
}

func benchFramePair(b *testing.B, syncEvery int) {
	r, t0 := bare(b)
	left, right := r.Stream(Left), r.Stream(Right)
	lp, rp := make([]byte, 160), make([]byte, 160)
	for i := range lp {
		lp[i], rp[i] = byte(i), byte(255-i)
	}
	lh := rtp.Header{Version: 2, PayloadType: payloadPCMU, SSRC: 1}
	rh := rtp.Header{Version: 2, PayloadType: payloadPCMA, SSRC: 2}
	delay := int64(r.m.delay) / nsPerSample
	step := func(k int) {
		now := t0.Add(time.Duration(k) * 20 * time.Millisecond)
		lh.SequenceNumber, lh.Timestamp = uint16(k), uint32(k*160)
		rh.SequenceNumber, rh.Timestamp = uint16(k), uint32(k*160)
		left.RTP(&lh, lp, now)
		right.RTP(&rh, rp, now)
		r.emitTo(r.posAt(now) - delay)
		if syncEvery > 0 && k%syncEvery == 0 {
			r.flush()
			c, err := r.nextCheckpoint(now, false)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.writeCheckpoint(slotOffset(c.Seq)); err != nil {
				b.Fatal(err)
			}
		}
	}
	for k := range 500 { // warm up: rings, staging, hash state buffer
		step(k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		step(500 + i)
	}
	b.StopTimer()
	if st := left.Stats(); st.Late+st.Overflow+st.Duplicate != 0 {
		b.Fatalf("packets dropped in steady state: %+v", st)
	}
	b.ReportMetric(float64(r.written)/float64(b.N+500), "spool_bytes/op")
}

// BenchmarkRecordingMemory measures the heap held per active recording
// (through the real Start path, three streams each: rep, remote, prompt).
func BenchmarkRecordingMemory(b *testing.B) {
	e := newEnv(b)
	m := e.manager(b, func(o *Options) { o.SyncInterval = time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for !m.isRunning() {
		time.Sleep(time.Millisecond)
	}
	const n = 200
	recs := make([]*Recording, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		recs = recs[:0]
		for range n {
			r, err := m.Start(ctx, Meta{TenantID: e.tenantA, CallID: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			r.Stream(Left)
			r.Stream(Right)
			r.Stream(Right)
			recs = append(recs, r)
		}
		b.StopTimer()
		time.Sleep(200 * time.Millisecond) // writer ticks: staging buffers in use
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "bytes/recording")
		for _, r := range recs {
			r.Finish(ctx)
		}
		clear(recs)
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
	}
	runtime.KeepAlive(recs)
}
