package media

import "net/netip"

// DropReason says why a packet was not forwarded.
type DropReason int

const (
	// DropUnlatchedSource: from an address other than the latched one.
	DropUnlatchedSource DropReason = iota
	// DropMalformed: not RTP/RTCP version 2, truncated or inconsistent.
	DropMalformed
	// DropBridgeOff: the bridge was off (prompt phase).
	DropBridgeOff
	// DropNoDestination: the other leg has no address yet, or is on hold.
	DropNoDestination
	// DropSendError: the socket refused the packet.
	DropSendError
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	"unlatched_source", "malformed", "bridge_off", "no_destination", "send_error",
}

// String is the reason's metric label value.
func (r DropReason) String() string {
	if r < 0 || r >= numDropReasons {
		return "unknown"
	}
	return dropReasonNames[r]
}

// Drops counts dropped packets by DropReason.
type Drops [numDropReasons]uint64

// Total is the sum over all reasons.
func (d Drops) Total() uint64 {
	var t uint64
	for _, n := range d {
		t += n
	}
	return t
}

// LegStats counts one leg's traffic. RTP and RTCP are counted together.
type LegStats struct {
	PacketsIn, BytesIn   uint64 // datagrams received from the leg, dropped ones included
	PacketsOut, BytesOut uint64 // datagrams sent to the leg: relayed and prompt
	PromptPackets        uint64 // of PacketsOut, prompt audio
	// Dropped counts packets received from the leg that were not relayed,
	// and prompt packets for the leg that could not be sent.
	Dropped     Drops
	DTMFEvents  uint64 // telephone-events reported (or counted, without OnDTMF)
	DTMFLost    uint64 // events not reported because OnDTMF was too slow
	LatchedRTP  netip.AddrPort
	LatchedRTCP netip.AddrPort
}

// Stats is a snapshot of a session's counters, indexed by Leg.
type Stats struct {
	Legs [2]LegStats
}

// Stats returns the session's counters. It is safe to call at any time,
// also after Close.
func (s *Session) Stats() Stats {
	var st Stats
	for x := LegA; x <= LegB; x++ {
		l, o := s.legs[x], s.legs[x.Other()]
		ls := &st.Legs[x]
		for k := range l.ep {
			e, oe := l.ep[k], o.ep[k]
			ls.PacketsIn += e.pktsIn.Load()
			ls.BytesIn += e.bytesIn.Load()
			ls.PacketsOut += oe.pktsOut.Load()
			ls.BytesOut += oe.bytesOut.Load()
			for r := range ls.Dropped {
				ls.Dropped[r] += e.drops[r].Load()
			}
		}
		ls.PromptPackets = l.play.pkts.Load()
		ls.PacketsOut += ls.PromptPackets
		ls.BytesOut += l.play.bytes.Load()
		for r := range ls.Dropped {
			ls.Dropped[r] += l.play.drops[r].Load()
		}
		ls.DTMFEvents = l.dtmfEvents.Load()
		ls.DTMFLost = l.dtmfLost.Load()
		if p := l.ep[sockRTP].latched.Load(); p != nil {
			ls.LatchedRTP = *p
		}
		if p := l.ep[sockRTCP].latched.Load(); p != nil {
			ls.LatchedRTCP = *p
		}
	}
	return st
}

// totals aggregates sessions for the Prometheus collector.
type totals struct {
	pktsIn, pktsOut, bytesIn, bytesOut uint64
	drops                              Drops
}

func (t *totals) add(st Stats) {
	for _, l := range st.Legs {
		t.pktsIn += l.PacketsIn
		t.pktsOut += l.PacketsOut
		t.bytesIn += l.BytesIn
		t.bytesOut += l.BytesOut
		for r, n := range l.Dropped {
			t.drops[r] += n
		}
	}
}
