package media

import "encoding/binary"

// dtmfDetector turns RFC 4733 telephone-event packets from one leg into one
// report per key press. It is owned by that leg's RTP reader goroutine.
//
// An event is reported on the first packet of it that arrives (so a press is
// seen even if its end packets are lost); all packets of one event share an
// RTP timestamp, so updates and the retransmitted end packets are ignored.
type dtmfDetector struct {
	seen   bool
	ssrc   uint32
	ts     uint32
	event  uint8
	ended  bool
	maxDur uint16
}

// feed returns the digit when payload starts a new event.
func (d *dtmfDetector) feed(ssrc, ts uint32, payload []byte) (rune, bool) {
	if len(payload) < 4 {
		return 0, false
	}
	ev := payload[0]
	end := payload[1]&0x80 != 0
	dur := binary.BigEndian.Uint16(payload[2:4])
	digit, ok := eventDigit(ev)
	if !ok {
		return 0, false
	}
	if d.seen && ssrc == d.ssrc && ev == d.event {
		if ts == d.ts {
			d.ended = d.ended || end
			d.maxDur = max(d.maxDur, dur)
			return 0, false
		}
		// RFC 4733 2.5.1.3: an event longer than the 16-bit duration goes on
		// in a new segment whose timestamp is the old one plus 0xFFFF. It is
		// the same key press, not a new one.
		if diff := ts - d.ts; !d.ended && d.maxDur >= 0xff00 && diff > 0 && diff <= 0x10000 {
			d.ts, d.ended, d.maxDur = ts, end, dur
			return 0, false
		}
	}
	*d = dtmfDetector{seen: true, ssrc: ssrc, ts: ts, event: ev, ended: end, maxDur: dur}
	return digit, true
}

// eventDigit maps RFC 4733 DTMF events 0-15 to their keys; other events
// (flash, tones) are not digits and are not reported.
func eventDigit(ev uint8) (rune, bool) {
	switch {
	case ev <= 9:
		return rune('0' + ev), true
	case ev == 10:
		return '*', true
	case ev == 11:
		return '#', true
	case ev <= 15:
		return rune('A' + ev - 12), true
	default:
		return 0, false
	}
}
