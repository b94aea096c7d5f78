package sip_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/blackbox-gw/blackbox/recorder"
	"github.com/blackbox-gw/blackbox/recorder/wavcheck"
	"github.com/blackbox-gw/blackbox/store"
)

// sendTone sends freq as PCMU in real time (20 ms frames) for d.
func (p *rtpPeer) sendTone(t *testing.T, to netip.AddrPort, freq float64, d time.Duration, ssrc uint32) {
	t.Helper()
	frames := int(d / (20 * time.Millisecond))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < frames; i++ {
		pcm := wavcheck.Tone(freq, 8000, i*160, 160, 0.3)
		payload := make([]byte, len(pcm))
		for j, v := range pcm {
			payload[j] = g711.EncodeUlawFrame(v)
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: ssrc},
			Payload: payload}
		b, _ := pkt.Marshal()
		if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
}

// sendDTMF sends one RFC 4733 event (payload type 101) for digit.
func (p *rtpPeer) sendDTMF(t *testing.T, to netip.AddrPort, digit byte) {
	t.Helper()
	event := digit - '0'
	for i := 0; i < 8; i++ {
		end := i >= 5
		flags := byte(10) // volume
		if end {
			flags |= 0x80
		}
		dur := uint16((i + 1) * 160)
		if end {
			dur = 6 * 160
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: uint16(1000 + i), Timestamp: 99999, SSRC: 4242, Marker: i == 0},
			Payload: []byte{event, flags, byte(dur >> 8), byte(dur)}}
		b, _ := pkt.Marshal()
		if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storedRecording waits until the call's recording is stored and returns
// it with its object's bytes.
func storedRecording(t *testing.T, g *gateway, tenant, callID string) (store.Recording, []byte) {
	t.Helper()
	p, _ := g.db.AdminScope(context.Background(), tenant)
	deadline := time.Now().Add(15 * time.Second)
	for {
		rs, err := g.db.In(p).Recordings(context.Background(), store.RecordingFilter{CallID: callID})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 1 && rs[0].State == store.RecordingStored {
			rc, err := g.objects.Get(context.Background(), rs[0].ObjectKey)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			body, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			return rs[0], body
		}
		if len(rs) > 1 {
			t.Fatalf("%d recordings for one call", len(rs))
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording of call %s never stored: %+v", callID, rs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The recording holds the rep on the left, the callee on the right, and the
// announcement at the start of the right channel, hashed as stored.
func TestOutboundRecording(t *testing.T) {
	g, tr, p := startOutbound(t, gatewayOptions{rtpPorts: [2]int{32000, 32099}})
	rep := newRTPPeer(t, "127.0.0.1")
	d, err := p.dial(t, g, "alice", "alice-secret-pw", "4155550111", rep)
	if err != nil {
		t.Fatal(err)
	}
	legA := mediaAddr(t, d.InviteResponse.Body())
	legB := mediaAddr(t, tr.lastInvite(t).Body())
	waitConsent(t, g, "acme")
	done := make(chan struct{})
	go func() { defer close(done); tr.rtp.sendTone(t, legB, 1000, 2*time.Second, 2) }()
	rep.sendTone(t, legA, 440, 2*time.Second, 1)
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	call := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
	rec, body := storedRecording(t, g, "acme", call.ID)
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != rec.SHA256 {
		t.Fatal("stored hash differs from the object's")
	}
	if len(rec.Channels) != 2 || rec.Channels[0] != "rep" || rec.Channels[1] != "remote" || rec.Provider != "blackbox" {
		t.Fatalf("recording metadata %+v", rec)
	}
	w, err := recorder.ReadWAV(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	left, right := w.Channel(0), w.Channel(1)
	if s := wavcheck.BlockToneShare(left, 8000, 440, 160); s < 0.5 {
		t.Errorf("left channel: 440 Hz share %.2f", s)
	}
	if s := wavcheck.BlockToneShare(left, 8000, 1000, 160); s > 0.05 {
		t.Errorf("left channel carries the callee (1 kHz share %.2f)", s)
	}
	if s := wavcheck.BlockToneShare(right, 8000, 1000, 160); s < 0.5 {
		t.Errorf("right channel: 1 kHz share %.2f", s)
	}
	head := right[:min(len(right), 8000/2)] // first 500 ms: the announcement
	if s := wavcheck.BlockToneShare(head, 8000, promptFreq, 160); s < 0.3 {
		t.Errorf("announcement not at the start of the right channel (share %.2f)", s)
	}
	want := call.EndAt.Sub(call.AnswerAt)
	if diff := w.Duration() - want; diff < -100*time.Millisecond || diff > 100*time.Millisecond {
		t.Errorf("recording lasts %s, the answered call %s", w.Duration(), want)
	}
}

func TestConsentDTMF(t *testing.T) {
	cases := []struct {
		name   string
		digit  byte // 0: press nothing
		result store.ConsentResult
		end    string
	}{
		{"accept", '1', store.ConsentAccepted, "bye"},
		{"decline", '2', store.ConsentDeclined, "consent_declined"},
		{"timeout", 0, store.ConsentTimeout, "consent_timeout"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lo := 32100 + 100*i
			g, tr, p := startOutbound(t, gatewayOptions{rtpPorts: [2]int{lo, lo + 99}, consentMode: store.ConsentAnnounceDTMF, dtmfTimeout: 700 * time.Millisecond})
			byes := p.acceptByes()
			rep := newRTPPeer(t, "127.0.0.1")
			d, err := p.dial(t, g, "alice", "alice-secret-pw", "4155550111", rep)
			if err != nil {
				t.Fatal(err)
			}
			legA := mediaAddr(t, d.InviteResponse.Body())
			legB := mediaAddr(t, tr.lastInvite(t).Body())
			if c.digit != 0 {
				tr.rtp.sendDTMF(t, legB, c.digit) // at once: digits count from the answer
			}
			ev := waitConsent(t, g, "acme")
			if ev.Result != c.result || ev.Mode != store.ConsentAnnounceDTMF || (c.digit != 0 && ev.Digit != string(c.digit)) {
				t.Fatalf("consent event %+v", ev)
			}
			if c.result == store.ConsentAccepted {
				rep.send(t, legA, 20, 0x55)
				tr.rtp.waitPackets(t, 0x55, 15) // bridged
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				d.Bye(ctx)
			} else {
				select {
				case <-byes:
				case <-time.After(5 * time.Second):
					t.Fatal("the rep was not hung up after a refusal")
				}
				select {
				case <-tr.byes:
				case <-time.After(5 * time.Second):
					t.Fatal("the callee was not hung up after a refusal")
				}
			}
			call := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
			if call.EndReason != c.end {
				t.Fatalf("end reason %q, want %q", call.EndReason, c.end)
			}
			waitPortsFree(t, g)
		})
	}
}

func TestHangupDuringPrompt(t *testing.T) {
	g, tr, p := startOutbound(t, gatewayOptions{rtpPorts: [2]int{32500, 32599}, promptLen: 5 * time.Second})
	byes := p.acceptByes()
	if _, err := p.dial(t, g, "alice", "alice-secret-pw", "4155550111", newRTPPeer(t, "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	d := <-tr.sessions
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := waitConsent(t, g, "acme"); ev.Result != store.ConsentHangupDuringPrompt {
		t.Fatalf("consent %+v", ev)
	}
	select {
	case <-byes:
	case <-time.After(5 * time.Second):
		t.Fatal("rep not hung up")
	}
	c := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
	if c.HangupBy != "callee" || c.EndReason != "bye" {
		t.Fatalf("record %+v", c)
	}
	storedRecording(t, g, "acme", c.ID) // the prompt's part is evidence too
	waitPortsFree(t, g)
}
