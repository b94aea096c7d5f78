package recorder

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

// bare is a Recording without a Manager loop or database: the test plays
// the writer by calling emitTo, with arrival times it chooses.
func bare(t testing.TB) (*Recording, time.Time) {
	t.Helper()
	met, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{opts: Options{SyncInterval: time.Hour}, log: testLogger(t), met: met, now: time.Now, delay: 80 * time.Millisecond}
	f, err := os.Create(filepath.Join(t.TempDir(), "bare.spool"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	t0 := time.Unix(1_700_000_000, 0)
	return m.newRecording("bare", Meta{}, "k", nil, t0, f, f.Name()), t0
}

func at(t0 time.Time, ms float64) time.Time {
	return t0.Add(time.Duration(ms * float64(time.Millisecond)))
}

// pcm flushes r and returns both channels as written to its spool.
func pcm(t *testing.T, r *Recording) (left, right []int16) {
	t.Helper()
	r.flush()
	buf := make([]byte, r.written)
	if _, err := r.f.ReadAt(buf, dataStart); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+4 <= len(buf); i += 4 {
		left = append(left, int16(binary.LittleEndian.Uint16(buf[i:])))
		right = append(right, int16(binary.LittleEndian.Uint16(buf[i+2:])))
	}
	return left, right
}

type pkt struct {
	seq   uint16
	ts    uint32
	ssrc  uint32
	pt    uint8
	fill  byte
	arrMS float64
}

// play offers packets in order and moves the writer as its ticker would:
// up to each arrival minus the reorder delay.
func play(r *Recording, s *Stream, t0 time.Time, pkts []pkt) {
	payload := make([]byte, 160)
	for _, p := range pkts {
		for i := range payload {
			payload[i] = p.fill
		}
		r.emitTo(r.posAt(at(t0, p.arrMS)) - int64(r.m.delay)/nsPerSample) // the ticker never stops
		s.RTP(&rtp.Header{Version: 2, PayloadType: p.pt, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: p.ssrc}, payload, at(t0, p.arrMS))
	}
}

// stream20 makes n packets of 20 ms arriving every 20 ms from startMS, with
// fill bytes 0x10, 0x11, ... so each packet's samples identify it.
func stream20(n int, ssrc uint32, seq0 uint16, ts0 uint32, startMS float64) []pkt {
	out := make([]pkt, n)
	for k := range out {
		out[k] = pkt{seq: seq0 + uint16(k), ts: ts0 + uint32(160*k), ssrc: ssrc, fill: byte(0x10 + k%0x60), arrMS: startMS + 20*float64(k)}
	}
	return out
}

// expectPacket checks 160 samples at pos carry fill (or silence if fill is 0).
func expectPacket(t *testing.T, ch []int16, pos int, fill byte, what string) {
	t.Helper()
	want := int16(0)
	if fill != 0 {
		want = g711.DecodeUlawFrame(fill)
	}
	if pos < 0 || pos+160 > len(ch) {
		t.Fatalf("%s: position %d outside %d samples", what, pos, len(ch))
	}
	for i := range 160 {
		if ch[pos+i] != want {
			t.Fatalf("%s: sample %d = %d, want %d", what, pos+i, ch[pos+i], want)
		}
	}
}

func TestPlacementLossReorderDuplicateLate(t *testing.T) {
	r, t0 := bare(t)
	s := r.Stream(Left)
	pk := stream20(20, 42, 65530, 4294967000, 1000) // sequence and timestamp wrap inside
	var order []pkt
	for k, p := range pk {
		switch k {
		case 5: // lost
		case 2: // withheld until far too late
		case 8: // swapped with 9, 20 ms late: within the reorder delay
			p.arrMS += 20
			order = append(order, pk[9].withArr(p.arrMS-20), p)
		case 9:
		case 12:
			order = append(order, p, p.withArr(p.arrMS+10)) // duplicate
		default:
			order = append(order, p)
		}
	}
	order = append(order, pk[2].withArr(1400))
	play(r, s, t0, order)
	r.emitTo(8000 + 21*160)
	left, right := pcm(t, r)
	for k := range pk {
		fill := pk[k].fill
		if k == 5 || k == 2 {
			fill = 0
		}
		expectPacket(t, left, 8000+160*k, fill, "packet "+string(rune('a'+k)))
	}
	for i, v := range right {
		if v != 0 {
			t.Fatalf("right channel sample %d = %d, want silence", i, v)
		}
	}
	st := s.Stats()
	if st.Duplicate != 1 || st.Late != 1 || st.Written != 18 || st.Realigned != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func (p pkt) withArr(ms float64) pkt { p.arrMS = ms; return p }

func TestPlacementRealign(t *testing.T) {
	cases := []struct {
		name      string
		second    func(first []pkt) []pkt
		wantPos   int // where the second run's first packet lands
		realigned int
	}{
		{"ssrc change", func([]pkt) []pkt { return stream20(5, 77, 9, 123456, 1500) }, 12000, 1},
		{"timestamp jump", func(f []pkt) []pkt {
			return stream20(5, 42, f[9].seq+1, f[9].ts+160+80000, 1200) // ts 10 s ahead, arrival on time
		}, 9600, 1},
		{"hold with frozen clock", func(f []pkt) []pkt {
			return stream20(5, 42, f[9].seq+1, f[9].ts+160, 4000) // 2.8 s gap, timestamps carry on from before
		}, 32000, 1},
		{"silence suppression", func(f []pkt) []pkt {
			return stream20(5, 42, f[9].seq+1, f[0].ts+3000*8, 4000) // timestamps kept pace with the gap
		}, 32000, 0},
		{"sequence restart", func(f []pkt) []pkt {
			return stream20(5, 42, f[9].seq+30000, f[9].ts+160+8*100, 1300) // ts says 1300 ms too, seq jumps
		}, 10400, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, t0 := bare(t)
			s := r.Stream(Left)
			first := stream20(10, 42, 100, 5000, 1000)
			second := c.second(first)
			for i := range second {
				second[i].fill = byte(0x70 + i)
			}
			play(r, s, t0, append(first, second...))
			r.emitTo(int64(c.wantPos) + 6*160)
			left, _ := pcm(t, r)
			expectPacket(t, left, 8000+160*9, first[9].fill, "last packet before")
			for i := range second {
				expectPacket(t, left, c.wantPos+160*i, second[i].fill, "packet after")
			}
			if c.wantPos > 8000+1600 {
				expectPacket(t, left, 8000+1600, 0, "gap") // silence right after the first run
			}
			if st := s.Stats(); st.Realigned != c.realigned || st.Late != 0 {
				t.Fatalf("stats %+v, want %d realignments", st, c.realigned)
			}
		})
	}
}

// TestPlacementDrift: a sender clock 0.5% off (either way) for 60 s is
// pulled back to the wall clock in small steps, without dropping packets.
func TestPlacementDrift(t *testing.T) {
	for _, period := range []float64{20.1, 19.9} {
		r, t0 := bare(t)
		s := r.Stream(Left)
		pk := stream20(3000, 5, 0, 0, 1000)
		for k := range pk {
			pk[k].arrMS = 1000 + period*float64(k)
		}
		play(r, s, t0, pk)
		st := s.Stats()
		if st.Late != 0 || st.Overflow != 0 || st.Written != len(pk) || st.DriftFixes == 0 || st.Realigned != 0 {
			t.Fatalf("period %.1f ms: %+v", period, st)
		}
		last := pk[len(pk)-1]
		end := r.posAt(at(t0, last.arrMS)) + 160
		if off := s.hi - end; off < -60*8 || off > 110*8 {
			t.Fatalf("period %.1f ms: last packet placed %d ms from its arrival", period, off/8)
		}
	}
}

func TestMixingDecodingAndIgnoredPayloads(t *testing.T) {
	r, t0 := bare(t)
	rep, remote, prompt := r.Stream(Left), r.Stream(Right), r.Stream(Right)
	loud := r.Stream(Left)
	payload := func(b byte) []byte {
		p := make([]byte, 160)
		for i := range p {
			p[i] = b
		}
		return p
	}
	h := func(pt uint8, ssrc uint32) *rtp.Header {
		return &rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: 1, Timestamp: 1, SSRC: ssrc}
	}
	arr := at(t0, 100)
	rep.RTP(h(0, 1), payload(0x80), arr)      // PCMU +32124
	loud.RTP(h(0, 2), payload(0x80), arr)     // + 32124 saturates
	remote.RTP(h(8, 3), payload(0xD5), arr)   // PCMA small positive
	prompt.RTP(h(8, 4), payload(0x2A), arr)   // PCMA
	prompt.RTP(h(101, 4), payload(0x01), arr) // telephone-event: ignored
	prompt.RTP(h(13, 4), payload(0x01), arr)  // comfort noise: ignored
	rep.RTP(h(0, 1), nil, arr)                // empty: invalid
	rep.RTP(h(0, 1), make([]byte, 2000), arr) // oversized: invalid
	r.emitTo(800 + 160)
	left, right := pcm(t, r)
	if left[800] != 32767 || left[959] != 32767 {
		t.Fatalf("saturating mix: %d", left[800])
	}
	want := int32(g711.DecodeAlawFrame(0xD5)) + int32(g711.DecodeAlawFrame(0x2A))
	if int32(right[800]) != want {
		t.Fatalf("right mix %d, want %d", right[800], want)
	}
	if left[799] != 0 || right[960-1] == 0 {
		t.Fatal("audio outside its packet")
	}
	if st := prompt.Stats(); st.Codec != 2 || st.Written != 1 {
		t.Fatalf("prompt stats %+v", st)
	}
	if st := rep.Stats(); st.Invalid != 2 || st.Written != 1 {
		t.Fatalf("rep stats %+v", st)
	}
	// Negative saturation.
	neg1, neg2 := r.Stream(Left), r.Stream(Left)
	neg1.RTP(h(0, 9), payload(0x00), at(t0, 200))
	neg2.RTP(h(0, 10), payload(0x00), at(t0, 200))
	r.emitTo(1600 + 160)
	left, _ = pcm(t, r)
	if left[1600] != -32768 {
		t.Fatalf("negative saturation: %d", left[1600])
	}
}

// TestLateStream: a stream added mid-recording starts at the writer's
// position and never replays stale ring contents.
func TestLateStream(t *testing.T) {
	r, t0 := bare(t)
	a := r.Stream(Left)
	play(r, a, t0, stream20(100, 1, 0, 0, 0)) // 2 s of audio on a
	b := r.Stream(Left)
	if b.cursor != r.cursor {
		t.Fatalf("new stream cursor %d, writer at %d", b.cursor, r.cursor)
	}
	pk := stream20(3, 2, 0, 0, 2500)
	for i := range pk {
		pk[i].fill = 0x90 // negative, distinct from a's
	}
	play(r, b, t0, pk)
	r.emitTo(20000 + 3*160 + 10)
	left, _ := pcm(t, r)
	expectPacket(t, left, 20000, 0x90, "late stream")
	expectPacket(t, left, 19000-160, 0, "silence before it")
}

// TestOverflowWhenWriterStalls: a stream never holds more than its ring; the
// excess is counted and becomes silence.
func TestOverflowWhenWriterStalls(t *testing.T) {
	r, t0 := bare(t)
	s := r.Stream(Left)
	pk := stream20(50, 1, 0, 0, 0) // 1 s with no writer progress
	for _, p := range pk {
		s.RTP(&rtp.Header{PayloadType: 0, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: p.ssrc}, make([]byte, 160), at(t0, p.arrMS))
	}
	st := s.Stats()
	if st.Overflow == 0 || st.Written+st.Overflow != 50 || st.Written > ringSize/160+1 {
		t.Fatalf("stats %+v", st)
	}
}
