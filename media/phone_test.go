package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// phone is a loopback party: an RTP and an RTCP socket, as a softphone or a
// carrier's media server would have.
type phone struct {
	t    testing.TB
	conn [2]*net.UDPConn // sockRTP, sockRTCP
	buf  []byte
}

func newPhone(t testing.TB) *phone {
	t.Helper()
	p := &phone{t: t, buf: make([]byte, 2048)}
	for k := range p.conn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p.conn[k] = c
		t.Cleanup(func() { _ = c.Close() })
	}
	return p
}

func (p *phone) addr(k int) netip.AddrPort {
	return p.conn[k].LocalAddr().(*net.UDPAddr).AddrPort()
}

// sdp describes this phone: its RTP port on m=, its RTCP port in a=rtcp.
func (p *phone) sdp(formats string, extra ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP %s\r\na=rtcp:%d\r\n", p.addr(sockRTP).Port(), formats, p.addr(sockRTCP).Port())
	for _, x := range extra {
		b.WriteString(x + "\r\n")
	}
	return []byte(b.String())
}

func (p *phone) send(k int, to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.conn[k].WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatalf("phone send: %v", err)
	}
}

// recv returns the next datagram on socket k, failing the test after 2 s.
func (p *phone) recv(k int) ([]byte, netip.AddrPort) {
	p.t.Helper()
	b, from, err := p.tryRecv(k, 2*time.Second)
	if err != nil {
		p.t.Fatalf("phone %v: %v", p.addr(k), err)
	}
	return b, from
}

func (p *phone) tryRecv(k int, wait time.Duration) ([]byte, netip.AddrPort, error) {
	_ = p.conn[k].SetReadDeadline(time.Now().Add(wait))
	n, from, err := p.conn[k].ReadFromUDPAddrPort(p.buf)
	if err != nil {
		return nil, from, err
	}
	return append([]byte(nil), p.buf[:n]...), from, nil
}

// expectSilence fails if anything arrives on socket k within wait.
func (p *phone) expectSilence(k int, wait time.Duration) {
	p.t.Helper()
	b, from, err := p.tryRecv(k, wait)
	if err == nil {
		p.t.Fatalf("phone got an unexpected %d-byte packet from %v", len(b), from)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		p.t.Fatal(err)
	}
}

func rtpPacket(t testing.TB, pt uint8, seq uint16, ts, ssrc uint32, marker bool, payload []byte) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{
		Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc, Marker: marker,
	}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rtcpRR is an RTCP receiver report with no report blocks.
func rtcpRR(ssrc uint32) []byte {
	return []byte{0x80, 201, 0, 1, byte(ssrc >> 24), byte(ssrc >> 16), byte(ssrc >> 8), byte(ssrc)}
}

func local(s *Session, x Leg, k int) netip.AddrPort {
	return netip.AddrPortFrom(loopback, uint16(s.LocalPort(x)+k))
}

// call is a session with phones on both legs after a full offer/answer:
// A offers aFormats, B answers bFormats.
type call struct {
	s    *Session
	a, b *phone
}

func (c *call) phone(x Leg) *phone {
	if x == LegA {
		return c.a
	}
	return c.b
}

func newCall(t testing.TB, e *Engine, opts SessionOptions, aFormats, bFormats string) *call {
	t.Helper()
	c := &call{s: newTestSession(t, e, opts), a: newPhone(t), b: newPhone(t)}
	te := "a=rtpmap:101 telephone-event/8000"
	if _, err := c.s.Offer(LegA, c.a.sdp(aFormats, te)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s.Answer(LegB, c.b.sdp(bFormats, te)); err != nil {
		t.Fatal(err)
	}
	return c
}
