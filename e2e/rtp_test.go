package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// rtpPacket is one packet an rtpPeer received.
type rtpPacket struct {
	From    netip.AddrPort
	At      time.Time
	Header  rtp.Header
	Payload []byte
}

// rtpStream is what an rtpPeer sends: one payload per Interval.
type rtpStream struct {
	PayloadType uint8
	SSRC        uint32
	Frames      [][]byte
	Interval    time.Duration // default 20 ms
	Delay       time.Duration // silence before the first packet
}

// packet marshals frame i as RTP (marker on the first frame).
func (s rtpStream) packet(i int, seq uint16, ts uint32) ([]byte, error) {
	pkt := rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			Marker:         i == 0,
			PayloadType:    s.PayloadType,
			SequenceNumber: seq,
			Timestamp:      ts,
			SSRC:           s.SSRC,
		},
		Payload: s.Frames[i],
	}
	raw, err := pkt.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal rtp frame %d: %w", i, err)
	}
	return raw, nil
}

// toneStream encodes pcm with codec into a stream.
func toneStream(codec g711Codec, ssrc uint32, pcm []int16) rtpStream {
	return rtpStream{PayloadType: codec.PayloadType, SSRC: ssrc, Frames: codec.Encode(pcm)}
}

// rtpPeer is a Go stand-in for a phone's media: one UDP socket that sends
// G.711 RTP and records every packet it receives with its source, so a test
// can say where media came from and that it arrived bit-exact.
type rtpPeer struct {
	conn *net.UDPConn

	mu      sync.Mutex
	got     []rtpPacket
	sent    [][]byte
	arrived chan struct{} // closed and replaced on every packet
	bad     int           // datagrams that were not RTP

	done chan struct{}
	wg   sync.WaitGroup
}

// newRTPPeer binds an even port on 127.0.0.1 (RTP convention; RTCP would be
// the odd one above) and reads until the test ends.
func newRTPPeer(t *testing.T) *rtpPeer {
	t.Helper()
	return newRTPPeerAt(t, netip.MustParseAddr("127.0.0.1"))
}

// newRTPPeerAt is newRTPPeer on another loopback address (a carrier's
// media on 127.0.0.2).
func newRTPPeerAt(t *testing.T, ip netip.Addr) *rtpPeer {
	t.Helper()
	var conn *net.UDPConn
	for i := 0; i < 50 && conn == nil; i++ {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			t.Fatalf("rtp peer: listen: %v", err)
		}
		if c.LocalAddr().(*net.UDPAddr).Port%2 == 0 {
			conn = c
		} else {
			c.Close()
		}
	}
	if conn == nil {
		t.Fatal("rtp peer: no even port after 50 tries")
	}
	p := &rtpPeer{conn: conn, arrived: make(chan struct{}), done: make(chan struct{})}
	p.wg.Add(1)
	go p.read()
	t.Cleanup(func() { p.Close() })
	return p
}

// Addr is the address the peer receives on and sends from.
func (p *rtpPeer) Addr() netip.AddrPort {
	return p.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close stops reading and sending; safe to call twice.
func (p *rtpPeer) Close() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	close(p.done)
	err := p.conn.Close()
	p.wg.Wait()
	return err
}

func (p *rtpPeer) read() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(buf[:n]); err != nil || pkt.Version != 2 {
			p.mu.Lock()
			p.bad++
			p.mu.Unlock()
			continue
		}
		rec := rtpPacket{From: from, At: time.Now(), Header: pkt.Header, Payload: bytes.Clone(pkt.Payload)}
		p.mu.Lock()
		p.got = append(p.got, rec)
		close(p.arrived)
		p.arrived = make(chan struct{})
		p.mu.Unlock()
	}
}

// Received returns a copy of every RTP packet received so far, in arrival order.
func (p *rtpPeer) Received() []rtpPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]rtpPacket(nil), p.got...)
}

// NotRTP counts datagrams that did not parse as RTP version 2.
func (p *rtpPeer) NotRTP() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bad
}

// Sent returns the payloads sent so far, in order.
func (p *rtpPeer) Sent() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.sent...)
}

// WaitReceived blocks until at least n packets arrived or ctx ends.
func (p *rtpPeer) WaitReceived(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		have, ch := len(p.got), p.arrived
		p.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("rtp peer %s: %d of %d packets: %w", p.Addr(), have, n, ctx.Err())
		case <-p.done:
			return fmt.Errorf("rtp peer %s closed with %d of %d packets", p.Addr(), have, n)
		}
	}
}

// Send paces s to `to` in real time and returns when every frame is sent,
// ctx ends or the peer closes.
func (p *rtpPeer) Send(ctx context.Context, to netip.AddrPort, s rtpStream) error {
	interval := s.Interval
	if interval <= 0 {
		interval = frameInterval
	}
	if s.Delay > 0 {
		select {
		case <-time.After(s.Delay):
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return errors.New("rtp peer closed")
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	seq := uint16(1000)
	ts := uint32(160_000)
	for i, payload := range s.Frames {
		raw, err := s.packet(i, seq, ts)
		if err != nil {
			return err
		}
		if _, err := p.conn.WriteToUDPAddrPort(raw, to); err != nil {
			return fmt.Errorf("send rtp to %s: %w", to, err)
		}
		p.mu.Lock()
		p.sent = append(p.sent, payload)
		p.mu.Unlock()
		seq++
		ts += uint32(len(payload))
		if i == len(s.Frames)-1 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return errors.New("rtp peer closed")
		}
	}
	return nil
}

// rtpSender is a Send running in the background; Stop ends it and returns its error.
type rtpSender struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// StartSending runs Send in a goroutine owned by the returned sender (and
// stopped at test end at the latest).
func (p *rtpPeer) StartSending(t *testing.T, to netip.AddrPort, s rtpStream) *rtpSender {
	ctx, cancel := context.WithCancel(context.Background())
	snd := &rtpSender{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(snd.done)
		snd.err = p.Send(ctx, to, s)
	}()
	t.Cleanup(func() { snd.Stop() })
	return snd
}

// Done is closed when every frame has been sent (or sending stopped).
func (s *rtpSender) Done() <-chan struct{} { return s.done }

// Stop ends sending early and waits; a cancelled send is not an error.
func (s *rtpSender) Stop() error {
	s.cancel()
	<-s.done
	if errors.Is(s.err, context.Canceled) {
		return nil
	}
	return s.err
}

// rtpSources lists the distinct source addresses of pkts in first-seen order.
func rtpSources(pkts []rtpPacket) []netip.AddrPort {
	var out []netip.AddrPort
	seen := map[netip.AddrPort]bool{}
	for _, p := range pkts {
		if !seen[p.From] {
			seen[p.From] = true
			out = append(out, p.From)
		}
	}
	return out
}

// assertRTPSource checks that every packet came from one address: host and a
// port in [lo, hi] (Blackbox's own range). It returns that address.
func assertRTPSource(t *testing.T, pkts []rtpPacket, host netip.Addr, lo, hi int) netip.AddrPort {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatal("no RTP received")
	}
	srcs := rtpSources(pkts)
	if len(srcs) != 1 {
		t.Errorf("RTP arrived from %d sources %v, want exactly one", len(srcs), srcs)
	}
	src := srcs[0]
	if src.Addr() != host {
		t.Errorf("RTP source %s, want host %s", src, host)
	}
	if p := int(src.Port()); p < lo || p > hi {
		t.Errorf("RTP source port %d outside %d-%d", p, lo, hi)
	}
	return src
}

// longestPayloadRun is the length of the longest run of consecutive received
// payloads that equals consecutive sent frames byte for byte. A relay that
// forwards media untouched yields a run as long as what it forwarded.
func longestPayloadRun(got []rtpPacket, sent [][]byte) int {
	best := 0
	for j := range got {
		if len(got)-j <= best {
			break
		}
		for i := range sent {
			if !bytes.Equal(got[j].Payload, sent[i]) {
				continue
			}
			n := 1
			for j+n < len(got) && i+n < len(sent) && bytes.Equal(got[j+n].Payload, sent[i+n]) {
				n++
			}
			best = max(best, n)
		}
	}
	return best
}

// decodeRTP decodes the G.711 packets of pkts to PCM in arrival order,
// skipping anything else (telephone-event, comfort noise).
func decodeRTP(pkts []rtpPacket) []int16 {
	var pcm []int16
	for _, p := range pkts {
		c, err := codecByPT(p.Header.PayloadType)
		if err != nil {
			continue
		}
		pcm = append(pcm, c.Decode([][]byte{p.Payload})...)
	}
	return pcm
}
