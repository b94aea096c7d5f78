package media

import (
	"bytes"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// recTap records what a Tap is shown.
type recTap struct {
	mu   sync.Mutex
	pkts []tapped
}

type tapped struct {
	src     Source
	hdr     rtp.Header
	payload []byte
}

func (r *recTap) RTP(src Source, hdr *rtp.Header, payload []byte, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pkts = append(r.pkts, tapped{src: src, hdr: hdr.Clone(), payload: append([]byte(nil), payload...)})
}

func (r *recTap) from(src Source) []tapped {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []tapped
	for _, p := range r.pkts {
		if p.src == src {
			out = append(out, p)
		}
	}
	return out
}

func TestRelayBitExactBothWays(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	tap := &recTap{}
	c := newCall(t, e, SessionOptions{ID: "bitexact", Tap: tap}, "0 8 101", "0 101")

	const n = 20
	for _, x := range []Leg{LegA, LegB} {
		from, to := c.phone(x), c.phone(x.Other())
		for i := range n {
			payload := make([]byte, 160)
			for j := range payload {
				payload[j] = byte(rand.IntN(256))
			}
			pkt := rtpPacket(t, 0, uint16(1000+i), uint32(160*i), 0xA1B2C3D4+uint32(x), i == 0, payload)
			from.send(sockRTP, local(c.s, x, sockRTP), pkt)
			got, src := to.recv(sockRTP)
			if !bytes.Equal(got, pkt) {
				t.Fatalf("leg %v packet %d changed in transit", x, i)
			}
			if src != local(c.s, x.Other(), sockRTP) {
				t.Fatalf("packet reached leg %v from %v, want Blackbox's port for that leg %v", x.Other(), src, local(c.s, x.Other(), sockRTP))
			}
		}
		rr := rtcpRR(0x01020304)
		from.send(sockRTCP, local(c.s, x, sockRTCP), rr)
		got, src := to.recv(sockRTCP)
		if !bytes.Equal(got, rr) || src != local(c.s, x.Other(), sockRTCP) {
			t.Fatalf("RTCP from leg %v: got % x from %v", x, got, src)
		}
	}

	st := c.s.Stats()
	for _, x := range []Leg{LegA, LegB} {
		ls := st.Legs[x]
		if ls.PacketsIn != n+1 || ls.PacketsOut != n+1 || ls.Dropped.Total() != 0 {
			t.Errorf("leg %v stats %+v, want %d in and out, no drops", x, ls, n+1)
		}
		if ls.BytesIn != n*172+8 {
			t.Errorf("leg %v bytes in %d, want %d", x, ls.BytesIn, n*172+8)
		}
		if ls.LatchedRTP != c.phone(x).addr(sockRTP) || ls.LatchedRTCP != c.phone(x).addr(sockRTCP) {
			t.Errorf("leg %v latched %v / %v", x, ls.LatchedRTP, ls.LatchedRTCP)
		}
		if got := len(tap.from(fromLeg(x))); got != n {
			t.Errorf("tap saw %d packets from leg %v, want %d (RTCP not shown)", got, x, n)
		}
	}
	if got := tap.from(FromA)[3]; got.hdr.SequenceNumber != 1003 || len(got.payload) != 160 {
		t.Errorf("tap got header %+v payload %d bytes", got.hdr, len(got.payload))
	}
}

func TestLatchingDropsThirdSender(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	c := newCall(t, e, SessionOptions{}, "0", "0")
	intruder := newPhone(t)
	to := local(c.s, LegA, sockRTP)

	first := rtpPacket(t, 0, 1, 0, 1, false, make([]byte, 160))
	c.a.send(sockRTP, to, first)
	if got, _ := c.b.recv(sockRTP); !bytes.Equal(got, first) {
		t.Fatal("first packet not relayed")
	}
	// The intruder's packets (RTP and RTCP) die; A's keep flowing, in order.
	intruder.send(sockRTP, to, rtpPacket(t, 0, 99, 0, 666, false, []byte("spoof")))
	intruder.send(sockRTCP, local(c.s, LegA, sockRTCP), rtcpRR(666))
	c.a.send(sockRTCP, local(c.s, LegA, sockRTCP), rtcpRR(1))
	second := rtpPacket(t, 0, 2, 160, 1, false, make([]byte, 160))
	c.a.send(sockRTP, to, second)
	if got, _ := c.b.recv(sockRTP); !bytes.Equal(got, second) {
		t.Fatalf("B got the intruder's packet % x", got)
	}
	// RTCP latched the intruder, who came first there; A's RTCP is dropped.
	if got, _ := c.b.recv(sockRTCP); !bytes.Equal(got, rtcpRR(666)) {
		t.Fatalf("RTCP latch: got % x", got)
	}
	c.b.expectSilence(sockRTCP, 100*time.Millisecond)

	st := c.s.Stats().Legs[LegA]
	if st.Dropped[DropUnlatchedSource] != 2 {
		t.Errorf("unlatched drops %d, want 2 (intruder RTP, A's RTCP)", st.Dropped[DropUnlatchedSource])
	}
	if st.LatchedRTP != c.a.addr(sockRTP) {
		t.Errorf("RTP latched to %v", st.LatchedRTP)
	}
}

func TestMalformedDropped(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	c := newCall(t, e, SessionOptions{}, "0", "0")
	to := local(c.s, LegA, sockRTP)
	good := rtpPacket(t, 0, 1, 0, 1, false, make([]byte, 160))
	bad := [][]byte{
		{0x80, 0, 0},                      // short
		append([]byte{0x40}, good[1:]...), // version 1
		{0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // STUN
		append([]byte{0x8f}, good[1:13]...),                                                  // 15 CSRCs claimed, none there
	}
	for _, b := range bad {
		c.a.send(sockRTP, to, b)
	}
	c.a.send(sockRTCP, local(c.s, LegA, sockRTCP), []byte{0x80, 201, 0})
	c.a.send(sockRTP, to, good)
	if got, _ := c.b.recv(sockRTP); !bytes.Equal(got, good) {
		t.Fatal("B did not get the good packet first")
	}
	eventually(t, "drops counted", func() bool {
		return c.s.Stats().Legs[LegA].Dropped[DropMalformed] == uint64(len(bad)+1)
	})
	if c.s.Stats().Legs[LegA].LatchedRTP != c.a.addr(sockRTP) {
		t.Error("junk latched or A not latched")
	}
}

func TestBridgeOff(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	tap := &recTap{}
	c := newCall(t, e, SessionOptions{Tap: tap}, "0", "0")
	c.s.SetBridge(false)
	held := rtpPacket(t, 0, 1, 0, 1, false, []byte("consent phase"))
	c.a.send(sockRTP, local(c.s, LegA, sockRTP), held)
	eventually(t, "tap sees A while bridge is off", func() bool { return len(tap.from(FromA)) == 1 })
	c.s.SetBridge(true)
	open := rtpPacket(t, 0, 2, 160, 1, false, []byte("bridged"))
	c.a.send(sockRTP, local(c.s, LegA, sockRTP), open)
	if got, _ := c.b.recv(sockRTP); !bytes.Equal(got, open) {
		t.Fatalf("B got % x, want only the packet sent after the bridge came on", got)
	}
	if d := c.s.Stats().Legs[LegA].Dropped[DropBridgeOff]; d != 1 {
		t.Errorf("bridge_off drops %d, want 1", d)
	}
}

func TestNoDestinationBeforeSDP(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	a := newPhone(t)
	if _, err := s.Offer(LegA, a.sdp("0")); err != nil {
		t.Fatal(err)
	}
	// B has not answered: A's early packet has nowhere to go.
	a.send(sockRTP, local(s, LegA, sockRTP), rtpPacket(t, 0, 1, 0, 1, false, nil))
	eventually(t, "no_destination drop", func() bool {
		return s.Stats().Legs[LegA].Dropped[DropNoDestination] == 1
	})
	// B's media arrives before its answer (early media): it latches B and
	// reaches A at A's SDP address.
	b := newPhone(t)
	early := rtpPacket(t, 0, 7, 0, 2, true, []byte("ringback"))
	b.send(sockRTP, local(s, LegB, sockRTP), early)
	if got, _ := a.recv(sockRTP); !bytes.Equal(got, early) {
		t.Fatal("early media not relayed to A")
	}
	// A now reaches B through the latched address, still without B's SDP.
	late := rtpPacket(t, 0, 2, 160, 1, false, []byte("hello"))
	a.send(sockRTP, local(s, LegA, sockRTP), late)
	if got, _ := b.recv(sockRTP); !bytes.Equal(got, late) {
		t.Fatal("A's packet did not reach B's latched address")
	}
}

func TestCloseReleasesPort(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	c := newCall(t, e, SessionOptions{}, "0", "0")
	port := c.s.LocalPort(LegA)
	if err := c.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	// The port is really free again.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatalf("port %d still bound after Close: %v", port, err)
	}
	_ = conn.Close()
	if _, err := c.s.Offer(LegA, c.a.sdp("0")); err != ErrClosed {
		t.Errorf("Offer after Close: %v, want ErrClosed", err)
	}
}

func TestProcessDoesNotAllocate(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	c := newCall(t, e, SessionOptions{Tap: &nopTap{}, OnDTMF: func(Leg, rune) {}}, "0 101", "0 101")
	src := c.a.addr(sockRTP)
	audio := rtpPacket(t, 0, 1, 0, 1, false, make([]byte, 160))
	event := rtpPacket(t, 101, 2, 160, 1, false, eventPayload(4, false, 160))
	rtcp := rtcpRR(1)
	now := time.Now()
	// First packets latch (one allocation each) and start the DTMF event.
	c.s.process(LegA, sockRTP, audio, src, now)
	c.s.process(LegA, sockRTCP, rtcp, c.a.addr(sockRTCP), now)
	c.s.process(LegA, sockRTP, event, src, now)
	for name, f := range map[string]func(){
		"audio":     func() { c.s.process(LegA, sockRTP, audio, src, now) },
		"dtmf":      func() { c.s.process(LegA, sockRTP, event, src, now) },
		"rtcp":      func() { c.s.process(LegA, sockRTCP, rtcp, c.a.addr(sockRTCP), now) },
		"spoofed":   func() { c.s.process(LegA, sockRTP, audio, c.b.addr(sockRTP), now) },
		"junk":      func() { c.s.process(LegA, sockRTP, audio[:5], src, now) },
		"bridgeoff": func() { c.s.SetBridge(false); c.s.process(LegA, sockRTP, audio, src, now); c.s.SetBridge(true) },
	} {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocations per packet", name, n)
		}
	}
}
