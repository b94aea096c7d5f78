package media

import (
	"encoding/binary"

	"github.com/pion/rtp"
)

const (
	rtpHeaderLen = 12
	// minRTCPLen is the smallest valid compound RTCP packet: an empty RR.
	minRTCPLen = 8
)

// parseRTP checks that b is a well-formed RTP packet and fills h from it
// without allocating (h is reused per socket). It returns the payload without
// padding. The bounds checks come first so junk never reaches the pion
// parser, whose errors allocate.
func parseRTP(b []byte, h *rtp.Header) ([]byte, bool) {
	if len(b) < rtpHeaderLen || b[0]>>6 != 2 {
		return nil, false
	}
	off := rtpHeaderLen + 4*int(b[0]&0x0f)
	if len(b) < off {
		return nil, false
	}
	if b[0]&0x10 != 0 {
		if len(b) < off+4 {
			return nil, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
		if len(b) < off {
			return nil, false
		}
	}
	end := len(b)
	if b[0]&0x20 != 0 {
		pad := int(b[end-1])
		if pad == 0 || off+pad > end {
			return nil, false
		}
		end -= pad
	}
	if _, err := h.Unmarshal(b); err != nil {
		return nil, false
	}
	return b[off:end], true
}

// isRTCP reports whether b looks like RTCP: version 2 and long enough.
func isRTCP(b []byte) bool {
	return len(b) >= minRTCPLen && b[0]>>6 == 2
}

// muxedRTCP reports whether an RTP-port packet is really RTCP (RFC 5761
// demultiplexing: RTCP packet types 192-223 read as marker + PT 64-95).
// Such packets are relayed but never shown to the Tap or the DTMF parser.
func muxedRTCP(b []byte) bool {
	pt := b[1] & 0x7f
	return pt >= 64 && pt <= 95
}

// ptSet is a set of RTP payload types (0-127).
type ptSet [2]uint64

func (s *ptSet) add(pt uint8) {
	if pt < 128 {
		s[pt>>6] |= 1 << (pt & 63)
	}
}

func (s ptSet) has(pt uint8) bool {
	return pt < 128 && s[pt>>6]&(1<<(pt&63)) != 0
}
