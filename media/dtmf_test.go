package media

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

func eventPayload(ev uint8, end bool, dur uint16) []byte {
	b := []byte{ev, 10, 0, 0}
	if end {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], dur)
	return b
}

// press is the packet train of one RFC 4733 key press: three updates and
// the end packet sent three times, all with the event's start timestamp.
func press(ev uint8, ts uint32) [][]byte {
	return [][]byte{
		eventPayload(ev, false, 160), eventPayload(ev, false, 320), eventPayload(ev, false, 480),
		eventPayload(ev, true, 640), eventPayload(ev, true, 640), eventPayload(ev, true, 640),
	}
}

func TestDTMFDetector(t *testing.T) {
	type pkt struct {
		ssrc, ts uint32
		payload  []byte
	}
	seq := func(ssrc, ts uint32, ps [][]byte) []pkt {
		var out []pkt
		for _, p := range ps {
			out = append(out, pkt{ssrc, ts, p})
		}
		return out
	}
	cat := func(parts ...[]pkt) []pkt {
		var out []pkt
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		name string
		in   []pkt
		want string
	}{
		{"one press", seq(1, 1000, press(1, 1000)), "1"},
		{"same key twice", cat(seq(1, 1000, press(5, 1000)), seq(1, 3000, press(5, 3000))), "55"},
		{"all keys", func() []pkt {
			var out []pkt
			for ev := uint8(0); ev <= 16; ev++ {
				out = append(out, seq(1, uint32(ev)*2000, press(ev, 0))...)
			}
			return out
		}(), "0123456789*#ABCD"},
		{"only end packets arrive", seq(1, 500, [][]byte{eventPayload(9, true, 800), eventPayload(9, true, 800)}), "9"},
		{"retransmitted end after next event starts", cat(
			seq(1, 100, press(1, 0)), seq(1, 900, [][]byte{eventPayload(2, false, 160)}),
			seq(1, 900, [][]byte{eventPayload(2, true, 320)})), "12"},
		{"long event segments", cat(
			seq(1, 0, [][]byte{eventPayload(4, false, 0xff00), eventPayload(4, false, 0xffff)}),
			seq(1, 0xffff, [][]byte{eventPayload(4, false, 800), eventPayload(4, true, 1600)})), "4"},
		{"new ssrc is a new event", cat(seq(1, 100, press(7, 0)), seq(2, 100, press(7, 0))), "77"},
		{"short payload ignored", seq(1, 5, [][]byte{{1, 2}}), ""},
		{"tone events ignored", seq(1, 5, [][]byte{eventPayload(70, false, 160)}), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d dtmfDetector
			var got []rune
			for _, p := range c.in {
				if r, ok := d.feed(p.ssrc, p.ts, p.payload); ok {
					got = append(got, r)
				}
			}
			if string(got) != c.want {
				t.Errorf("digits %q, want %q", string(got), c.want)
			}
		})
	}
}

func TestDTMFReportedOnceAndRelayed(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	var mu sync.Mutex
	var got []string
	c := newCall(t, e, SessionOptions{OnDTMF: func(leg Leg, d rune) {
		mu.Lock()
		got = append(got, leg.String()+string(d))
		mu.Unlock()
	}}, "0 101", "0 101")

	var seq uint16
	var sent [][]byte
	sendPress := func(from Leg, ev uint8, ts uint32) {
		for _, p := range press(ev, ts) {
			seq++
			pkt := rtpPacket(t, 101, seq, ts, 42+uint32(from), false, p)
			c.phone(from).send(sockRTP, local(c.s, from, sockRTP), pkt)
			if from == LegA {
				sent = append(sent, pkt)
			}
		}
	}
	sendPress(LegA, 1, 8000)
	sendPress(LegA, 11, 16000)
	sendPress(LegB, 5, 8000)
	// PCMU that happens to look like an event is audio, not a digit.
	c.a.send(sockRTP, local(c.s, LegA, sockRTP), rtpPacket(t, 0, 99, 24000, 42, false, eventPayload(3, true, 160)))

	for i, want := range sent {
		if b, _ := c.b.recv(sockRTP); !bytes.Equal(b, want) {
			t.Fatalf("event packet %d not relayed intact", i)
		}
	}
	eventually(t, "three digits", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 3
	})
	time.Sleep(50 * time.Millisecond) // a duplicate report would show up by now
	mu.Lock()
	defer mu.Unlock()
	// Each leg's events come in order; the two legs run independently.
	var a, b []string
	for _, g := range got {
		if g[0] == 'A' {
			a = append(a, g)
		} else {
			b = append(b, g)
		}
	}
	if len(got) != 3 || len(a) != 2 || a[0] != "A1" || a[1] != "A#" || len(b) != 1 || b[0] != "B5" {
		t.Fatalf("reported %q, want A1 A# from A and B5 from B", got)
	}
	if st := c.s.Stats(); st.Legs[LegA].DTMFEvents != 2 || st.Legs[LegB].DTMFEvents != 1 {
		t.Errorf("DTMF counts A=%d B=%d", st.Legs[LegA].DTMFEvents, st.Legs[LegB].DTMFEvents)
	}
}
