package recorder

import (
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

// Timeline parameters, in samples at 8 kHz.
const (
	ringBits = 12
	ringSize = 1 << ringBits // 512 ms: what a stream may hold ahead of the writer
	ringMask = ringSize - 1
	// maxPacketSamples bounds one packet (G.711 ptime 120 ms is the most
	// any phone sends).
	maxPacketSamples = 960
	// jumpSamples: a packet this far from where its arrival says it
	// belongs is a new timeline (hold with a frozen clock, a timestamp
	// jump), not jitter.
	jumpSamples = 300 * SampleRate / 1000
	// Clock drift is measured as the smallest lag (arrival - placement) seen
	// in each window: the least-delayed packet shows the true offset, jitter
	// only adds to it. Beyond these bounds the stream is shifted back to it.
	driftWindow  = 2 * SampleRate
	driftBehind  = 40 * SampleRate / 1000  // placements slipping later than arrivals (slow sender)
	driftAhead   = 100 * SampleRate / 1000 // placements running ahead of arrivals (fast sender)
	seqReset     = 1000                    // sequence jump treated as a new stream
	noLag        = int64(1) << 62
	payloadPCMU  = 0
	payloadPCMA  = 8
	seqWindowLen = 64
)

// Stream is one RTP input (e.g. the rep's audio, the remote party's audio,
// a prompt) mixed into one channel of a recording. Its RTP timeline is
// mapped onto the recording's wall-clock timeline, anchored by the arrival
// time of its first packet.
type Stream struct {
	rec *Recording
	ch  Channel

	mu     sync.Mutex
	ring   []int16 // samples for positions [cursor, cursor+ringSize)
	cursor int64   // first position the writer has not emitted
	hi     int64   // end of the latest audio placed
	closed bool

	anchored  bool
	ssrc      uint32
	anchorTS  uint32
	anchorPos int64
	seqMax    uint16
	seqSeen   uint64 // bit i: seqMax-i was seen
	winStart  int64
	winMin    int64

	stats StreamStats
}

// StreamStats counts what happened to a stream's packets.
type StreamStats struct {
	Packets    int // packets offered
	Written    int // packets (fully or partly) placed
	Late       int
	Duplicate  int
	Overflow   int
	Codec      int // ignored payload types
	Invalid    int
	Realigned  int // re-anchors: SSRC change, timestamp or sequence jump
	DriftFixes int // small shifts correcting sender clock drift
}

func newStream(r *Recording, ch Channel) *Stream {
	return &Stream{rec: r, ch: ch, ring: make([]int16, ringSize), winMin: noLag}
}

// Stats returns the stream's counters so far.
func (s *Stream) Stats() StreamStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// RTP offers one packet. It never blocks on I/O and keeps no reference to
// hdr or payload (payload must exclude RTP padding, as rtp.Packet.Unmarshal
// gives it). PCMU and PCMA are decoded; other payload types are ignored.
func (s *Stream) RTP(hdr *rtp.Header, payload []byte, at time.Time) {
	var decode func(uint8) int16
	switch hdr.PayloadType {
	case payloadPCMU:
		decode = g711.DecodeUlawFrame
	case payloadPCMA:
		decode = g711.DecodeAlawFrame
	default:
		s.count(&s.stats.Codec, dropCodec)
		return
	}
	if len(payload) == 0 || len(payload) > maxPacketSamples {
		s.count(&s.stats.Invalid, dropInvalid)
		return
	}
	arr := s.rec.posAt(at)
	n := int64(len(payload))

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.stats.Packets++
	placed, fresh := s.place(hdr, arr)
	if !fresh && !s.acceptSeq(hdr.SequenceNumber) {
		return
	}
	if lag := arr - placed; lag < s.winMin {
		s.winMin = lag
	}
	// Clip to what the writer has not emitted yet and what the ring holds.
	from, to := max(placed, s.cursor), min(placed+n, s.cursor+ringSize)
	if to <= from {
		if placed+n <= s.cursor {
			s.drop(&s.stats.Late, dropLate)
		} else {
			s.drop(&s.stats.Overflow, dropOverflow)
		}
		return
	}
	for p := from; p < to; p++ {
		s.ring[p&ringMask] = decode(payload[p-placed])
	}
	s.hi = max(s.hi, to)
	s.stats.Written++
}

// place maps a packet to its timeline position, re-anchoring the stream
// when the packet starts a new timeline (fresh is then true) and applying
// drift corrections at window ends.
func (s *Stream) place(hdr *rtp.Header, arr int64) (placed int64, fresh bool) {
	if !s.anchored {
		s.anchor(hdr, arr)
		return arr, true
	}
	d := int16(hdr.SequenceNumber - s.seqMax)
	placed = s.anchorPos + int64(int32(hdr.Timestamp-s.anchorTS))
	lag := arr - placed
	// Only a packet newer than any seen may start a new timeline: an old
	// one far from its place is just late.
	jumped := d > 0 && (lag > jumpSamples || lag < -jumpSamples)
	if hdr.SSRC != s.ssrc || jumped || d > seqReset || d < -seqReset {
		s.stats.Realigned++
		s.rec.m.met.realigned.Inc()
		s.anchor(hdr, arr)
		return arr, true
	}
	if arr-s.winStart >= driftWindow {
		if s.winMin != noLag && (s.winMin > driftBehind || s.winMin < -driftAhead) {
			s.anchorPos += s.winMin
			placed += s.winMin
			s.stats.DriftFixes++
			s.rec.m.met.realigned.Inc()
		}
		s.winStart, s.winMin = arr, noLag
	}
	return placed, false
}

func (s *Stream) anchor(hdr *rtp.Header, arr int64) {
	s.anchored, s.ssrc = true, hdr.SSRC
	s.anchorTS, s.anchorPos = hdr.Timestamp, arr
	s.seqMax, s.seqSeen = hdr.SequenceNumber, 1
	s.winStart, s.winMin = arr, noLag
}

// acceptSeq tracks the last 64 sequence numbers: a repeat is a duplicate,
// anything older than the window is late.
func (s *Stream) acceptSeq(seq uint16) bool {
	d := int16(seq - s.seqMax)
	switch {
	case d > 0:
		if d >= seqWindowLen {
			s.seqSeen = 1
		} else {
			s.seqSeen = s.seqSeen<<uint(d) | 1
		}
		s.seqMax = seq
		return true
	case -d >= seqWindowLen:
		s.drop(&s.stats.Late, dropLate)
		return false
	}
	bit := uint64(1) << uint(-d)
	if s.seqSeen&bit != 0 {
		s.drop(&s.stats.Duplicate, dropDuplicate)
		return false
	}
	s.seqSeen |= bit
	return true
}

// drop counts a rejected packet; s.mu is held.
func (s *Stream) drop(n *int, reason string) {
	*n++
	s.rec.m.met.dropped[reason].Inc()
}

// count is drop for packets rejected before taking the lock.
func (s *Stream) count(n *int, reason string) {
	s.mu.Lock()
	*n++
	s.stats.Packets++
	s.mu.Unlock()
	s.rec.m.met.dropped[reason].Inc()
}

// drain adds the stream's samples for [pos, pos+len(acc)) into acc, clears
// them from the ring and moves the stream's cursor past them. The writer
// calls it with pos equal to the stream's cursor.
func (s *Stream) drain(acc []int32, pos int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int64(len(acc))
	if pos > s.cursor {
		// The writer moved on before this stream's first drain (it was
		// created mid-tick): clear what it skipped so no slot aliases.
		for p := s.cursor; p < min(pos, s.cursor+ringSize); p++ {
			s.ring[p&ringMask] = 0
		}
		s.cursor = pos
	}
	if pos >= s.hi {
		s.cursor = pos + n
		return
	}
	for i := int64(0); i < n; i++ {
		j := (pos + i) & ringMask
		acc[i] += int32(s.ring[j])
		s.ring[j] = 0
	}
	s.cursor = pos + n
}

func (s *Stream) close() (hi int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.hi
}
