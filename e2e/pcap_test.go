package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/pion/rtp"
)

// SIPp plays media from pcap files (play_pcap_audio), not from WAVs, so the
// tone fixtures exist as pcaps of RTP too. These are classic libpcap files
// with Ethernet framing, which SIPp's prepare_pcap reads.

const (
	pcapMagicMicros = 0xa1b2c3d4
	pcapMagicNanos  = 0xa1b23c4d
	linkEthernet    = 1
	linkLinuxSLL    = 113
)

// pcapUDP is one UDP datagram read from a pcap.
type pcapUDP struct {
	At       time.Duration // since the first packet
	Src, Dst netip.AddrPort
	Payload  []byte
}

// pcapEpoch is the fixed capture time of generated pcaps, so regenerating
// a fixture yields the same bytes.
var pcapEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// rtpPcap renders s as a pcap: one packet per frame, Interval apart, from
// 10.0.0.1:40000 to 10.0.0.2:40002 (SIPp rewrites both ends when playing).
func rtpPcap(s rtpStream) ([]byte, error) {
	interval := s.Interval
	if interval <= 0 {
		interval = frameInterval
	}
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	le(uint32(pcapMagicMicros))
	le(uint16(2))
	le(uint16(4))
	le(int32(0))
	le(uint32(0))
	le(uint32(65535))
	le(uint32(linkEthernet))

	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 1}), 40000)
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 2}), 40002)
	var ts uint32
	for i, payload := range s.Frames {
		raw, err := s.packet(i, uint16(i+1), ts)
		if err != nil {
			return nil, err
		}
		ts += uint32(len(payload))
		frame := ethernetUDP(src, dst, uint16(i), raw)
		at := pcapEpoch.Add(time.Duration(i) * interval)
		le(uint32(at.Unix()))
		le(uint32(at.Nanosecond() / 1000))
		le(uint32(len(frame)))
		le(uint32(len(frame)))
		b.Write(frame)
	}
	return b.Bytes(), nil
}

// ethernetUDP frames payload as Ethernet/IPv4/UDP with a valid IP checksum
// (UDP checksum 0 = none, legal over IPv4).
func ethernetUDP(src, dst netip.AddrPort, id uint16, payload []byte) []byte {
	const ethLen, ipLen, udpLen = 14, 20, 8
	f := make([]byte, ethLen+ipLen+udpLen+len(payload))
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[ethLen : ethLen+ipLen]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen+udpLen+len(payload)))
	binary.BigEndian.PutUint16(ip[4:6], id)
	ip[8] = 64
	ip[9] = 17
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip))
	udp := f[ethLen+ipLen : ethLen+ipLen+udpLen]
	binary.BigEndian.PutUint16(udp[0:2], src.Port())
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(udpLen+len(payload)))
	copy(f[ethLen+ipLen+udpLen:], payload)
	return f
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// readPcapUDP returns every IPv4 UDP datagram of a pcap file.
func readPcapUDP(path string) ([]pcapUDP, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pcap: %w", err)
	}
	out, err := parsePcapUDP(data)
	if err != nil {
		return nil, fmt.Errorf("pcap %s: %w", path, err)
	}
	return out, nil
}

func parsePcapUDP(data []byte) ([]pcapUDP, error) {
	if len(data) < 24 {
		return nil, errors.New("shorter than a pcap header")
	}
	var order binary.ByteOrder = binary.LittleEndian
	magic := order.Uint32(data[0:4])
	if magic != pcapMagicMicros && magic != pcapMagicNanos {
		order = binary.BigEndian
		magic = order.Uint32(data[0:4])
	}
	var unit time.Duration
	switch magic {
	case pcapMagicMicros:
		unit = time.Microsecond
	case pcapMagicNanos:
		unit = time.Nanosecond
	default:
		return nil, fmt.Errorf("bad magic %#x (not a classic pcap; pcapng is not supported)", magic)
	}
	link := order.Uint32(data[20:24])
	if link != linkEthernet && link != linkLinuxSLL {
		return nil, fmt.Errorf("link type %d not supported (Ethernet or Linux SLL)", link)
	}
	var (
		out   []pcapUDP
		first time.Time
	)
	for p := 24; p < len(data); {
		if p+16 > len(data) {
			return nil, fmt.Errorf("truncated record header at byte %d", p)
		}
		sec, frac := order.Uint32(data[p:]), order.Uint32(data[p+4:])
		incl := int(order.Uint32(data[p+8:]))
		p += 16
		if p+incl > len(data) {
			return nil, fmt.Errorf("truncated packet at byte %d", p)
		}
		frame := data[p : p+incl]
		p += incl
		at := time.Unix(int64(sec), int64(frac)*int64(unit))
		if first.IsZero() {
			first = at
		}
		u, ok := udpOf(frame, link)
		if !ok {
			continue
		}
		u.At = at.Sub(first)
		out = append(out, u)
	}
	return out, nil
}

// udpOf extracts an IPv4 UDP datagram from a link-layer frame.
func udpOf(frame []byte, link uint32) (pcapUDP, bool) {
	var ip []byte
	switch link {
	case linkEthernet:
		if len(frame) < 14 {
			return pcapUDP{}, false
		}
		etype, off := binary.BigEndian.Uint16(frame[12:14]), 14
		if etype == 0x8100 && len(frame) >= 18 { // one VLAN tag
			etype, off = binary.BigEndian.Uint16(frame[16:18]), 18
		}
		if etype != 0x0800 {
			return pcapUDP{}, false
		}
		ip = frame[off:]
	case linkLinuxSLL:
		if len(frame) < 16 || binary.BigEndian.Uint16(frame[14:16]) != 0x0800 {
			return pcapUDP{}, false
		}
		ip = frame[16:]
	}
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 17 {
		return pcapUDP{}, false
	}
	ihl := int(ip[0]&0x0f) * 4
	if len(ip) < ihl+8 {
		return pcapUDP{}, false
	}
	udp := ip[ihl:]
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen < 8 || ulen > len(udp) {
		return pcapUDP{}, false
	}
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(udp[0:2]))
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(udp[2:4]))
	return pcapUDP{Src: src, Dst: dst, Payload: udp[8:ulen]}, true
}

// pcapRTP parses every datagram of a pcap as RTP.
func pcapRTP(path string) ([]rtp.Packet, error) {
	dgrams, err := readPcapUDP(path)
	if err != nil {
		return nil, err
	}
	pkts := make([]rtp.Packet, 0, len(dgrams))
	for i, d := range dgrams {
		var p rtp.Packet
		if err := p.Unmarshal(d.Payload); err != nil {
			return nil, fmt.Errorf("pcap %s packet %d: not RTP: %w", path, i, err)
		}
		pkts = append(pkts, p)
	}
	if len(pkts) == 0 {
		return nil, fmt.Errorf("pcap %s: no UDP packets", path)
	}
	return pkts, nil
}
