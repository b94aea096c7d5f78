package media

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

const (
	// maxSDPBytes and maxMLines bound the work one SDP body can cause.
	maxSDPBytes = 64 << 10
	maxMLines   = 32
	// minMediaPort rejects ports no real RTP endpoint uses, which also keeps
	// a forged SDP from aiming relayed packets at well-known services.
	minMediaPort = 1024
)

type codecKind uint8

const (
	kindOther codecKind = iota
	kindPCMU
	kindPCMA
	kindTelephoneEvent
	kindCN
)

func (k codecKind) audio() bool { return k == kindPCMU || k == kindPCMA }

// format is one payload type of an m= line.
type format struct {
	pt   uint8
	kind codecKind
}

type direction uint8

const (
	dirSendRecv direction = iota
	dirSendOnly
	dirRecvOnly
	dirInactive
)

func (d direction) String() string {
	return [...]string{"sendrecv", "sendonly", "recvonly", "inactive"}[d]
}

// sends reports whether a party whose SDP says d sends media.
func (d direction) sends() bool { return d == dirSendRecv || d == dirSendOnly }

func parseDirection(s string) (direction, bool) {
	switch s {
	case "sendrecv":
		return dirSendRecv, true
	case "sendonly":
		return dirSendOnly, true
	case "recvonly":
		return dirRecvOnly, true
	case "inactive":
		return dirInactive, true
	}
	return 0, false
}

// mediaInfo is what Blackbox needs from a party's audio m= line.
type mediaInfo struct {
	addr     netip.Addr // unspecified (0.0.0.0 or ::) means hold
	rtpPort  int
	rtcpPort int
	rtcpAddr netip.Addr
	dir      direction
	formats  []format // acceptable formats, in m= line order
}

func (m *mediaInfo) hold() bool { return m.addr.IsUnspecified() }

func (m *mediaInfo) rtp() netip.AddrPort {
	return netip.AddrPortFrom(m.addr, uint16(m.rtpPort))
}

func (m *mediaInfo) rtcp() netip.AddrPort {
	return netip.AddrPortFrom(m.rtcpAddr, uint16(m.rtcpPort))
}

func (m *mediaInfo) first(pred func(codecKind) bool) (format, bool) {
	for _, f := range m.formats {
		if pred(f.kind) {
			return f, true
		}
	}
	return format{}, false
}

func badSDP(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSDP, fmt.Sprintf(format, args...))
}

func parseSDP(b []byte) (*sdp.SessionDescription, error) {
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, badSDP("empty body")
	}
	if len(b) > maxSDPBytes {
		return nil, badSDP("%d bytes, limit %d", len(b), maxSDPBytes)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(string(b)); err != nil {
		return nil, badSDP("%v", err)
	}
	switch n := len(d.MediaDescriptions); {
	case n == 0:
		return nil, badSDP("no m= line")
	case n > maxMLines:
		return nil, badSDP("%d m= lines, limit %d", n, maxMLines)
	}
	return &d, nil
}

// usableAudio reports whether m is an audio stream Blackbox can anchor.
func usableAudio(m *sdp.MediaDescription) bool {
	return m.MediaName.Media == "audio" && m.MediaName.Port.Value != 0 &&
		strings.Join(m.MediaName.Protos, "/") == "RTP/AVP"
}

// pickAudio finds the audio m= line of an offer to anchor: the one at prefer
// (its index in the previous exchange) if still usable, else the first usable
// one that carries PCMU or PCMA.
func pickAudio(d *sdp.SessionDescription, prefer int) (int, mediaInfo, error) {
	try := func(i int) (mediaInfo, bool, error) {
		m := d.MediaDescriptions[i]
		if !usableAudio(m) {
			return mediaInfo{}, false, nil
		}
		info, err := readMedia(d, m)
		if err != nil {
			return mediaInfo{}, false, err
		}
		_, ok := info.first(codecKind.audio)
		return info, ok, nil
	}
	if prefer >= 0 && prefer < len(d.MediaDescriptions) {
		info, ok, err := try(prefer)
		if err != nil {
			return 0, mediaInfo{}, err
		}
		if ok {
			return prefer, info, nil
		}
	}
	for i := range d.MediaDescriptions {
		info, ok, err := try(i)
		if err != nil {
			return 0, mediaInfo{}, err
		}
		if ok {
			return i, info, nil
		}
	}
	return 0, mediaInfo{}, fmt.Errorf("%w: no RTP/AVP audio stream with PCMU or PCMA", ErrNoCodec)
}

// readMedia extracts and validates the transport and formats of m.
func readMedia(d *sdp.SessionDescription, m *sdp.MediaDescription) (mediaInfo, error) {
	var info mediaInfo
	c := m.ConnectionInformation
	if c == nil {
		c = d.ConnectionInformation
	}
	if c == nil {
		return info, badSDP("audio stream has no c= line")
	}
	addr, err := connAddr(c)
	if err != nil {
		return info, err
	}
	info.addr, info.rtcpAddr = addr, addr

	port := m.MediaName.Port
	if port.Range != nil && *port.Range != 1 {
		return info, badSDP("audio port %d/%d: port ranges are not supported", port.Value, *port.Range)
	}
	if port.Value < minMediaPort {
		return info, badSDP("audio port %d is not a usable RTP port", port.Value)
	}
	info.rtpPort, info.rtcpPort = port.Value, port.Value+1

	if v, ok := m.Attribute("rtcp"); ok {
		if err := info.readRTCP(v); err != nil {
			return info, err
		}
	}
	if info.rtcpPort > 65535 {
		return info, badSDP("audio port %d leaves no room for RTCP", port.Value)
	}

	info.dir = dirSendRecv
	for _, a := range d.Attributes {
		if dir, ok := parseDirection(a.Key); ok {
			info.dir = dir
		}
	}
	for _, a := range m.Attributes {
		if dir, ok := parseDirection(a.Key); ok {
			info.dir = dir
		}
	}

	info.formats, err = readFormats(m)
	return info, err
}

func connAddr(c *sdp.ConnectionInformation) (netip.Addr, error) {
	if c.NetworkType != "IN" {
		return netip.Addr{}, badSDP("c= network type %q, want IN", c.NetworkType)
	}
	if c.Address == nil {
		return netip.Addr{}, badSDP("c= line has no address")
	}
	addr, err := netip.ParseAddr(c.Address.Address)
	if err != nil {
		return netip.Addr{}, badSDP("c= address %q is not an IP address", c.Address.Address)
	}
	if addr.Zone() != "" {
		return netip.Addr{}, badSDP("c= address %q has a zone", c.Address.Address)
	}
	switch c.AddressType {
	case "IP4":
		if !addr.Is4() {
			return netip.Addr{}, badSDP("c= IP4 with address %q", c.Address.Address)
		}
	case "IP6":
		if !addr.Is6() {
			return netip.Addr{}, badSDP("c= IP6 with address %q", c.Address.Address)
		}
		addr = addr.Unmap()
	default:
		return netip.Addr{}, badSDP("c= address type %q, want IP4 or IP6", c.AddressType)
	}
	if addr.IsMulticast() {
		return netip.Addr{}, badSDP("c= address %s is multicast", addr)
	}
	return addr, nil
}

// readRTCP applies an RFC 3605 a=rtcp:<port> [IN IP4|IP6 <addr>] attribute.
func (m *mediaInfo) readRTCP(v string) error {
	f := strings.Fields(v)
	if len(f) != 1 && len(f) != 4 {
		return badSDP("a=rtcp:%s: want a port, optionally with an address", v)
	}
	p, err := strconv.Atoi(f[0])
	if err != nil || p < minMediaPort || p > 65535 {
		return badSDP("a=rtcp:%s: bad port", v)
	}
	m.rtcpPort = p
	if len(f) == 4 {
		addr, err := connAddr(&sdp.ConnectionInformation{
			NetworkType: f[1], AddressType: f[2], Address: &sdp.Address{Address: f[3]},
		})
		if err != nil {
			return fmt.Errorf("a=rtcp: %w", err)
		}
		if !addr.IsUnspecified() {
			m.rtcpAddr = addr
		}
	}
	return nil
}

// readFormats lists the formats Blackbox can carry. Static payload types
// are known by number; rtpmap, when present, is what counts.
func readFormats(m *sdp.MediaDescription) ([]format, error) {
	rtpmap := map[uint8]codecKind{}
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, kind, ok := parseRTPMap(a.Value)
		if !ok {
			return nil, badSDP("a=rtpmap:%s is malformed", a.Value)
		}
		if _, dup := rtpmap[pt]; !dup {
			rtpmap[pt] = kind
		}
	}
	var out []format
	for _, s := range m.MediaName.Formats {
		n, err := strconv.ParseUint(s, 10, 8)
		if err != nil || n > 127 {
			return nil, badSDP("m= format %q is not an RTP payload type", s)
		}
		pt := uint8(n)
		kind, mapped := rtpmap[pt]
		if !mapped {
			kind = staticKind(pt)
		}
		if kind != kindOther {
			out = append(out, format{pt: pt, kind: kind})
		}
	}
	return out, nil
}

func staticKind(pt uint8) codecKind {
	switch pt {
	case 0:
		return kindPCMU
	case 8:
		return kindPCMA
	case 13:
		return kindCN
	}
	return kindOther
}

// parseRTPMap reads "<pt> <name>/<clock>[/<channels>]". Encodings Blackbox
// cannot carry parse fine and come back as kindOther.
func parseRTPMap(v string) (uint8, codecKind, bool) {
	num, enc, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return 0, 0, false
	}
	n, err := strconv.ParseUint(num, 10, 8)
	if err != nil || n > 127 {
		return 0, 0, false
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return 0, 0, false
	}
	clock, err := strconv.Atoi(parts[1])
	if err != nil {
		return 0, 0, false
	}
	if clock != 8000 || (len(parts) == 3 && parts[2] != "1") {
		return uint8(n), kindOther, true
	}
	switch strings.ToLower(parts[0]) {
	case "pcmu":
		return uint8(n), kindPCMU, true
	case "pcma":
		return uint8(n), kindPCMA, true
	case "telephone-event":
		return uint8(n), kindTelephoneEvent, true
	case "cn":
		return uint8(n), kindCN, true
	}
	return uint8(n), kindOther, true
}
