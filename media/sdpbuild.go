package media

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// mslot remembers one m= line negotiated on a leg, so later offers to that
// leg can keep every earlier m= line in place (RFC 3264 8: an offer never
// drops a stream; a declined one stays with port 0).
type mslot struct {
	media   string
	protos  []string
	formats []string
}

func slotOf(m *sdp.MediaDescription) mslot {
	return mslot{media: m.MediaName.Media, protos: m.MediaName.Protos, formats: m.MediaName.Formats}
}

func layoutOf(d *sdp.SessionDescription) []mslot {
	return slotsOf(d.MediaDescriptions)
}

func slotsOf(lines []*sdp.MediaDescription) []mslot {
	out := make([]mslot, len(lines))
	for i, m := range lines {
		out[i] = slotOf(m)
	}
	return out
}

// rejected is the port-0 m= line that declines a stream.
func (m mslot) rejected() *sdp.MediaDescription {
	formats := m.formats
	if len(formats) == 0 {
		formats = []string{"0"} // an m= line needs at least one format
	}
	return &sdp.MediaDescription{MediaName: sdp.MediaName{
		Media: m.media, Port: sdp.RangedPort{Value: 0}, Protos: m.protos, Formats: formats,
	}}
}

// audioLine builds Blackbox's audio m= line on port (RTCP on port+1) with
// the formats in keep. rtpmap/fmtp/ptime come from src, the m= line being
// translated (nil for Blackbox's own offer); every other attribute is
// dropped: ICE, DTLS, SRTP keys, rtcp-mux and the like describe the other
// party's transport, not Blackbox's.
func audioLine(src *sdp.MediaDescription, keep []format, port int, dir direction) *sdp.MediaDescription {
	md := &sdp.MediaDescription{MediaName: sdp.MediaName{
		Media: "audio", Port: sdp.RangedPort{Value: port}, Protos: []string{"RTP", "AVP"},
	}}
	var kept ptSet
	for _, f := range keep {
		md.MediaName.Formats = append(md.MediaName.Formats, strconv.Itoa(int(f.pt)))
		kept.add(f.pt)
	}
	var srcAttrs []sdp.Attribute
	if src != nil {
		md.Bandwidth = src.Bandwidth
		srcAttrs = src.Attributes
	}
	for _, f := range keep {
		if a, ok := attrFor(srcAttrs, "rtpmap", f.pt); ok {
			md.Attributes = append(md.Attributes, a)
		} else if name := standardName(f.kind); name != "" {
			md.Attributes = append(md.Attributes, sdp.NewAttribute("rtpmap", strconv.Itoa(int(f.pt))+" "+name))
		}
		if a, ok := attrFor(srcAttrs, "fmtp", f.pt); ok {
			md.Attributes = append(md.Attributes, a)
		} else if src == nil && f.kind == kindTelephoneEvent {
			md.Attributes = append(md.Attributes, sdp.NewAttribute("fmtp", strconv.Itoa(int(f.pt))+" 0-16"))
		}
	}
	for _, a := range srcAttrs {
		if a.Key == "ptime" || a.Key == "maxptime" {
			md.Attributes = append(md.Attributes, a)
		}
	}
	md.Attributes = append(md.Attributes,
		sdp.NewAttribute("rtcp", strconv.Itoa(port+1)),
		sdp.NewPropertyAttribute(dir.String()))
	return md
}

// attrFor finds the first attribute key whose value starts with pt.
func attrFor(attrs []sdp.Attribute, key string, pt uint8) (sdp.Attribute, bool) {
	for _, a := range attrs {
		if a.Key != key {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(a.Value), " ")
		if n, err := strconv.Atoi(num); err == nil && n == int(pt) {
			return a, true
		}
	}
	return sdp.Attribute{}, false
}

func standardName(k codecKind) string {
	switch k {
	case kindPCMU:
		return "PCMU/8000"
	case kindPCMA:
		return "PCMA/8000"
	case kindTelephoneEvent:
		return "telephone-event/8000"
	case kindCN:
		return "CN/8000"
	}
	return ""
}

func addrType(a netip.Addr) string {
	if a.Is4() {
		return "IP4"
	}
	return "IP6"
}

func unspecifiedLike(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// render marshals the SDP Blackbox sends to leg x. The o= line carries the
// leg's own session id; its version goes up only when the body differs from
// the last one sent to that leg, as RFC 3264 8 asks (so a retransmitted
// request or response gets the very same SDP back).
func (s *Session) render(x Leg, lines []*sdp.MediaDescription, hold bool) []byte {
	n := &s.neg[x]
	ext := s.e.opts.ExternalAddr
	caddr := ext
	if hold {
		caddr = unspecifiedLike(ext)
	}
	d := sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "blackbox", SessionID: n.sessID, NetworkType: "IN",
			AddressType: addrType(ext), UnicastAddress: ext.String(),
		},
		SessionName: "-",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: addrType(ext), Address: &sdp.Address{Address: caddr.String()},
		},
		TimeDescriptions:  []sdp.TimeDescription{{Timing: sdp.Timing{}}},
		MediaDescriptions: lines,
	}
	key, _ := d.Marshal() // pion's Marshal never fails
	if !bytes.Equal(key, n.lastKey) {
		if n.lastKey != nil {
			n.version++
		}
		n.lastKey = key
	}
	d.Origin.SessionVersion = n.version
	out, _ := d.Marshal()
	return out
}
