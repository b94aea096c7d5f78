package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

const (
	frameSamples = 160 // 20 ms at 8 kHz
	frameDur     = 20 * time.Millisecond
)

// player is the prompt stream into one leg. Its RTP identity (SSRC,
// sequence, timestamp) lives as long as the session, so consecutive prompts
// are one stream with talkspurts, as a phone expects. sem serialises Plays
// on the leg and guards the fields up to hdr.
type player struct {
	sem     chan struct{}
	started bool
	ssrc    uint32
	seq     uint16
	ts      uint32
	lastAt  time.Time
	buf     [rtpHeaderLen + frameSamples]byte
	hdr     rtp.Header

	pkts, bytes atomic.Uint64
	drops       [numDropReasons]atomic.Uint64
}

func newPlayer() player { return player{sem: make(chan struct{}, 1)} }

// Play sends p into the given legs, encoded to each leg's negotiated G.711
// law, in 20 ms packets paced in real time, and returns once the prompt has
// played, or with ctx.Err() or ErrClosed if cancelled first. A leg whose
// codec is not negotiated yet fails with ErrNotNegotiated before anything is
// sent. Plays on the same leg run one after the other.
//
// Play does not stop the relay: with the bridge on, a leg hears the far
// party and the prompt interleaved; turn the bridge off first for a clean
// prompt (see SetBridge).
func (s *Session) Play(ctx context.Context, p *Prompt, legs ...Leg) error {
	if p == nil || len(p.Samples) == 0 {
		return fmt.Errorf("play: %w: no samples", ErrBadPrompt)
	}
	if len(legs) == 0 {
		return errors.New("play: no leg given")
	}
	var want [2]bool
	for _, l := range legs {
		if !l.valid() {
			return fmt.Errorf("play: invalid leg %v", l)
		}
		want[l] = true
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.plays.Add(1)
	s.mu.Unlock()
	defer s.plays.Done()

	// Legs are always taken A then B, so two Plays cannot deadlock.
	for x := LegA; x <= LegB; x++ {
		if !want[x] {
			continue
		}
		sem := s.legs[x].play.sem
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		}
	}
	var codecs [2]format
	s.mu.Lock()
	for x := LegA; x <= LegB; x++ {
		if want[x] {
			codecs[x] = s.neg[x].codec
			if !codecs[x].kind.audio() {
				s.mu.Unlock()
				return fmt.Errorf("play %s to leg %v: %w", p.ID, x, ErrNotNegotiated)
			}
		}
	}
	s.mu.Unlock()

	ticker := time.NewTicker(frameDur)
	defer ticker.Stop()
	frames := (len(p.Samples) + frameSamples - 1) / frameSamples
	for i := 0; ; i++ {
		if i > 0 {
			select {
			case <-ticker.C:
			case <-ctx.Done():
				return ctx.Err()
			case <-s.done:
				return ErrClosed
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		if i == frames {
			return nil // the last frame has had its 20 ms
		}
		frame := p.Samples[i*frameSamples : min((i+1)*frameSamples, len(p.Samples))]
		now := time.Now()
		for x := LegA; x <= LegB; x++ {
			if want[x] {
				s.sendFrame(x, codecs[x], frame, i == 0, now)
			}
		}
	}
}

// sendFrame sends one 20 ms frame to leg x; a short last frame is padded
// with silence.
func (s *Session) sendFrame(x Leg, c format, frame []int16, first bool, now time.Time) {
	l := s.legs[x]
	pl := &l.play
	switch {
	case !pl.started:
		pl.started = true
		pl.ssrc, pl.seq, pl.ts = rand.Uint32(), uint16(rand.Uint32()), rand.Uint32()
	case first:
		// A new talkspurt: the timestamp advances by the wall-clock gap
		// since the previous prompt packet, as RFC 3550 5.1 asks.
		pl.seq++
		pl.ts += max(uint32(now.Sub(pl.lastAt)/(time.Second/promptRate)), frameSamples)
	default:
		pl.seq++
		pl.ts += frameSamples
	}
	pl.lastAt = now

	b := pl.buf[:]
	b[0] = 0x80
	b[1] = c.pt
	if first {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], pl.seq)
	binary.BigEndian.PutUint32(b[4:], pl.ts)
	binary.BigEndian.PutUint32(b[8:], pl.ssrc)
	payload := b[rtpHeaderLen:]
	encode := g711.EncodeUlawFrame
	if c.kind == kindPCMA {
		encode = g711.EncodeAlawFrame
	}
	for j := range payload {
		var v int16
		if j < len(frame) {
			v = frame[j]
		}
		payload[j] = encode(v)
	}

	dst, ok := l.dest(sockRTP)
	if !ok {
		pl.drops[DropNoDestination].Add(1)
		return
	}
	if _, err := l.ep[sockRTP].conn.WriteToUDPAddrPort(b, dst); err != nil {
		pl.drops[DropSendError].Add(1)
		return
	}
	pl.pkts.Add(1)
	pl.bytes.Add(uint64(len(b)))
	if t := s.tap.Load(); t != nil {
		pl.hdr = rtp.Header{
			Version: 2, Marker: first, PayloadType: c.pt,
			SequenceNumber: pl.seq, Timestamp: pl.ts, SSRC: pl.ssrc,
		}
		t.tap.RTP(promptTo(x), &pl.hdr, payload, now)
	}
}
