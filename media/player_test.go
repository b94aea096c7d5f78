package media

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

func rampPrompt(samples int) *Prompt {
	p := &Prompt{ID: "ramp", Version: "1", Samples: make([]int16, samples)}
	for i := range p.Samples {
		p.Samples[i] = int16((i*97)%20000 - 10000)
	}
	p.Duration = time.Duration(samples) * time.Second / promptRate
	return p
}

func encodeFrame(law codecKind, s []int16) []byte {
	out := make([]byte, frameSamples)
	for i := range out {
		var v int16
		if i < len(s) {
			v = s[i]
		}
		if law == kindPCMA {
			out[i] = g711.EncodeAlawFrame(v)
		} else {
			out[i] = g711.EncodeUlawFrame(v)
		}
	}
	return out
}

type received struct {
	hdr     rtp.Header
	payload []byte
	at      time.Time
}

func recvRTP(t *testing.T, p *phone, n int) []received {
	t.Helper()
	var out []received
	for range n {
		b, _ := p.recv(sockRTP)
		var pkt rtp.Packet
		if err := pkt.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		out = append(out, received{hdr: pkt.Header, payload: pkt.Payload, at: time.Now()})
	}
	return out
}

func TestPlayEncodesAndPaces(t *testing.T) {
	for _, law := range []struct {
		name string
		pt   string
		kind codecKind
	}{{"PCMU", "0", kindPCMU}, {"PCMA", "8", kindPCMA}} {
		t.Run(law.name, func(t *testing.T) {
			e := newTestEngine(t, 4, nil)
			tap := &recTap{}
			c := newCall(t, e, SessionOptions{Tap: tap}, law.pt+" 101", law.pt)
			c.s.SetBridge(false)
			const frames = 10
			p := rampPrompt(frames*frameSamples - 50) // last frame short: padded with silence

			start := time.Now()
			played := make(chan time.Duration, 1)
			go func() {
				if err := c.s.Play(context.Background(), p, LegA); err != nil {
					t.Error(err)
				}
				played <- time.Since(start)
			}()
			got := recvRTP(t, c.a, frames) // read as they come, to see the pacing
			if took := <-played; took < frames*frameDur {
				t.Errorf("Play returned after %v, before the %v prompt could play", took, frames*frameDur)
			}
			for i, r := range got {
				end := min((i+1)*frameSamples, len(p.Samples))
				if want := encodeFrame(law.kind, p.Samples[i*frameSamples:end]); string(r.payload) != string(want) {
					t.Fatalf("frame %d payload is not %s of the prompt", i, law.name)
				}
				if r.hdr.PayloadType != uint8(staticPT(law.kind)) {
					t.Fatalf("PT %d, want %s", r.hdr.PayloadType, law.name)
				}
				if r.hdr.Marker != (i == 0) {
					t.Errorf("frame %d marker %v", i, r.hdr.Marker)
				}
				if i > 0 {
					if r.hdr.SequenceNumber != got[i-1].hdr.SequenceNumber+1 || r.hdr.Timestamp != got[i-1].hdr.Timestamp+frameSamples || r.hdr.SSRC != got[0].hdr.SSRC {
						t.Errorf("frame %d header %+v does not follow %+v", i, r.hdr, got[i-1].hdr)
					}
				}
			}
			// The first frame leaves at once, the others on the 20 ms ticker.
			if span := got[frames-1].at.Sub(got[0].at); span < (frames-1)*frameDur-5*time.Millisecond || span > 3*frames*frameDur {
				t.Errorf("%d frames arrived over %v, want about %v", frames, span, (frames-1)*frameDur)
			}
			if n := len(tap.from(PromptToA)); n != frames {
				t.Errorf("tap saw %d prompt packets, want %d", n, frames)
			}
			c.b.expectSilence(sockRTP, 30*time.Millisecond)

			// A second prompt continues the stream as a new talkspurt.
			if err := c.s.Play(context.Background(), rampPrompt(frameSamples), LegA, LegB); err != nil {
				t.Fatal(err)
			}
			next := recvRTP(t, c.a, 1)[0]
			last := got[frames-1].hdr
			if next.hdr.SSRC != last.SSRC || next.hdr.SequenceNumber != last.SequenceNumber+1 || !next.hdr.Marker {
				t.Errorf("second prompt header %+v after %+v", next.hdr, last)
			}
			if gap := next.hdr.Timestamp - last.Timestamp; gap < frameSamples*2 {
				t.Errorf("timestamp advanced %d over a gap of at least 40 ms", gap)
			}
			toB := recvRTP(t, c.b, 1)[0]
			if toB.hdr.PayloadType != uint8(staticPT(law.kind)) || toB.hdr.SSRC == next.hdr.SSRC {
				t.Errorf("prompt to B: %+v", toB.hdr)
			}
			if st := c.s.Stats().Legs[LegA]; st.PromptPackets != frames+1 {
				t.Errorf("prompt packets to A %d, want %d", st.PromptPackets, frames+1)
			}
		})
	}
}

func staticPT(k codecKind) int {
	if k == kindPCMA {
		return 8
	}
	return 0
}

func TestPlayErrors(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	ctx := context.Background()
	if err := s.Play(ctx, rampPrompt(160), LegA); !errors.Is(err, ErrNotNegotiated) {
		t.Errorf("play before SDP: %v, want ErrNotNegotiated", err)
	}
	if err := s.Play(ctx, &Prompt{}, LegA); !errors.Is(err, ErrBadPrompt) {
		t.Errorf("empty prompt: %v", err)
	}
	if err := s.Play(ctx, rampPrompt(160)); err == nil {
		t.Error("no leg: no error")
	}
	if err := s.Play(ctx, rampPrompt(160), Leg(7)); err == nil {
		t.Error("bad leg: no error")
	}
}

func TestPlayCancelAndClose(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	c := newCall(t, e, SessionOptions{}, "0", "0")
	long := rampPrompt(10 * promptRate)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.s.Play(ctx, long, LegA); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled Play: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Error("Play did not stop promptly on cancel")
	}

	errc := make(chan error, 1)
	go func() { errc <- c.s.Play(context.Background(), long, LegA) }()
	recvRTP(t, c.a, 1)
	_ = c.s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Play during Close: %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Play kept running after Close")
	}
	if err := c.s.Play(context.Background(), long, LegA); !errors.Is(err, ErrClosed) {
		t.Errorf("Play after Close: %v", err)
	}
}

func TestPlaySerialisesPerLeg(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	c := newCall(t, e, SessionOptions{}, "0", "0")
	errc := make(chan error, 2)
	for range 2 {
		go func() { errc <- c.s.Play(context.Background(), rampPrompt(3*frameSamples), LegA) }()
	}
	got := recvRTP(t, c.a, 6)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i].hdr.SequenceNumber != got[i-1].hdr.SequenceNumber+1 {
			t.Fatalf("two concurrent Plays interleaved: seq %d after %d", got[i].hdr.SequenceNumber, got[i-1].hdr.SequenceNumber)
		}
	}
	if !got[0].hdr.Marker || !got[3].hdr.Marker || got[1].hdr.Marker {
		t.Error("each prompt should start one talkspurt")
	}
}
