package media

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

const (
	sockRTP  = 0
	sockRTCP = 1
	// readBufSize exceeds any RTP packet on an Ethernet path; a datagram
	// that fills the buffer may have been truncated and is dropped.
	readBufSize = 2048
)

// remote is an immutable snapshot of where a leg's SDP says to send media,
// swapped atomically by the SDP code and read by the relay.
type remote struct {
	addr [2]netip.AddrPort // RTP, RTCP; invalid until the leg sent SDP
	hold bool              // c=0.0.0.0: send nothing to this leg
	dtmf ptSet             // telephone-event PTs the leg may send with
}

// endpoint is one local socket. Its buffer, header and counters are written
// only by its own reader goroutine (the atomics let Stats read them).
type endpoint struct {
	conn    *net.UDPConn
	port    int
	latched atomic.Pointer[netip.AddrPort]

	pktsIn, bytesIn   atomic.Uint64 // datagrams received
	pktsOut, bytesOut atomic.Uint64 // datagrams relayed to the other leg
	drops             [numDropReasons]atomic.Uint64

	buf []byte
	hdr rtp.Header
}

func (e *endpoint) drop(r DropReason) { e.drops[r].Add(1) }

// legRelay is the media side of one leg: its two sockets and what the relay
// needs to know about the party on it.
type legRelay struct {
	leg      Leg
	ep       [2]*endpoint
	remote   atomic.Pointer[remote]
	lastRecv atomic.Int64 // ns since the session epoch of the last accepted packet

	dtmf       dtmfDetector // owned by the RTP reader
	dtmfEvents atomic.Uint64
	dtmfLost   atomic.Uint64

	play player
}

func newLegRelay(leg Leg, rtpConn, rtcpConn *net.UDPConn, port int) *legRelay {
	l := &legRelay{leg: leg, play: newPlayer()}
	l.ep[sockRTP] = &endpoint{conn: rtpConn, port: port, buf: make([]byte, readBufSize)}
	l.ep[sockRTCP] = &endpoint{conn: rtcpConn, port: port + 1, buf: make([]byte, readBufSize)}
	return l
}

func (l *legRelay) port() int { return l.ep[sockRTP].port }

// dest is where packets for this leg's socket k go: the latched source, or
// before latching the address from the leg's SDP. A leg on c=0.0.0.0 hold
// gets nothing.
func (l *legRelay) dest(k int) (netip.AddrPort, bool) {
	r := l.remote.Load()
	if r != nil && r.hold {
		return netip.AddrPort{}, false
	}
	if p := l.ep[k].latched.Load(); p != nil {
		return *p, true
	}
	if r == nil || !r.addr[k].IsValid() {
		return netip.AddrPort{}, false
	}
	return r.addr[k], true
}

// read is the reader goroutine of leg x's socket k.
func (s *Session) read(x Leg, k int) {
	defer s.wg.Done()
	e := s.legs[x].ep[k]
	for {
		n, src, err := e.conn.ReadFromUDPAddrPort(e.buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient errors (ICMP-induced ones, ENOBUFS) must not end the
			// call, nor spin the CPU if they repeat.
			select {
			case <-s.done:
				return
			case <-time.After(time.Millisecond):
			}
			continue
		}
		s.handle(x, k, e.buf[:n], src, time.Now())
	}
}

// handle relays one datagram received on leg x's socket k.
func (s *Session) handle(x Leg, k int, pkt []byte, src netip.AddrPort, now time.Time) {
	out, dst, ok := s.process(x, k, pkt, src, now)
	if !ok {
		return
	}
	e := s.legs[x].ep[k]
	if _, err := out.WriteToUDPAddrPort(pkt, dst); err != nil {
		e.drop(DropSendError)
		return
	}
	e.pktsOut.Add(1)
	e.bytesOut.Add(uint64(len(pkt)))
}

// process is the per-packet work short of sending: validate, latch, keep
// alive, detect DTMF, tap, and pick the socket and address to forward from
// and to. It allocates nothing, except once when a source latches.
func (s *Session) process(x Leg, k int, pkt []byte, src netip.AddrPort, now time.Time) (*net.UDPConn, netip.AddrPort, bool) {
	l := s.legs[x]
	e := l.ep[k]
	e.pktsIn.Add(1)
	e.bytesIn.Add(uint64(len(pkt)))

	var payload []byte
	media := false
	switch {
	case len(pkt) >= readBufSize:
		e.drop(DropMalformed)
		return nil, netip.AddrPort{}, false
	case k == sockRTCP || len(pkt) >= rtpHeaderLen && muxedRTCP(pkt):
		if !isRTCP(pkt) {
			e.drop(DropMalformed)
			return nil, netip.AddrPort{}, false
		}
	default:
		var ok bool
		if payload, ok = parseRTP(pkt, &e.hdr); !ok {
			e.drop(DropMalformed)
			return nil, netip.AddrPort{}, false
		}
		media = true
	}

	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if p := e.latched.Load(); p == nil {
		s.latch(x, k, e, src)
	} else if *p != src {
		e.drop(DropUnlatchedSource)
		return nil, netip.AddrPort{}, false
	}
	l.lastRecv.Store(int64(now.Sub(s.epoch)))

	if media {
		if r := l.remote.Load(); r != nil && r.dtmf.has(e.hdr.PayloadType) {
			if digit, ok := l.dtmf.feed(e.hdr.SSRC, e.hdr.Timestamp, payload); ok {
				s.postDTMF(x, digit)
			}
		}
		if t := s.tap.Load(); t != nil {
			t.tap.RTP(fromLeg(x), &e.hdr, payload, now)
		}
	}

	if !s.bridge.Load() {
		e.drop(DropBridgeOff)
		return nil, netip.AddrPort{}, false
	}
	o := s.legs[x.Other()]
	dst, ok := o.dest(k)
	if !ok {
		e.drop(DropNoDestination)
		return nil, netip.AddrPort{}, false
	}
	return o.ep[k].conn, dst, true
}

// latch is kept out of process so that only a latch allocates.
//
//go:noinline
func (s *Session) latch(x Leg, k int, e *endpoint, src netip.AddrPort) {
	p := new(netip.AddrPort)
	*p = src
	e.latched.Store(p)
	s.log.Debug("latched media source", "leg", x, "rtcp", k == sockRTCP, "source", src)
}

func (s *Session) postDTMF(x Leg, digit rune) {
	l := s.legs[x]
	if s.opts.OnDTMF == nil {
		l.dtmfEvents.Add(1)
		return
	}
	select {
	case s.events <- dtmfEvent{leg: x, digit: digit}:
		l.dtmfEvents.Add(1)
	default:
		l.dtmfLost.Add(1)
	}
}
