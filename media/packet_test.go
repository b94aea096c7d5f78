package media

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
)

func TestParseRTP(t *testing.T) {
	base, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 7, SSRC: 9}, Payload: []byte("abcd")}).Marshal()
	withCSRC, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, CSRC: []uint32{1, 2}}, Payload: []byte("xy")}).Marshal()
	ext := rtp.Header{Version: 2}
	_ = ext.SetExtension(1, []byte{0xaa})
	withExt, _ := (&rtp.Packet{Header: ext, Payload: []byte("pq")}).Marshal()
	padded := append(append([]byte(nil), base...), 0, 0, 3)
	padded[0] |= 0x20

	var h rtp.Header
	for name, c := range map[string]struct {
		pkt     []byte
		payload string
	}{
		"plain": {base, "abcd"}, "csrc": {withCSRC, "xy"}, "extension": {withExt, "pq"}, "padding": {padded, "abcd"},
	} {
		p, ok := parseRTP(c.pkt, &h)
		if !ok || string(p) != c.payload {
			t.Errorf("%s: payload %q ok %v", name, p, ok)
		}
	}
	badPad := append([]byte(nil), padded...)
	badPad[len(badPad)-1] = 200
	zeroPad := append([]byte(nil), padded...)
	zeroPad[len(zeroPad)-1] = 0
	shortExt := append([]byte(nil), withExt[:14]...)
	for name, b := range map[string][]byte{
		"short": base[:11], "v1": append([]byte{0x40}, base[1:]...), "csrc missing": append([]byte{0x83}, base[1:12]...),
		"pad too big": badPad, "pad zero": zeroPad, "ext cut": shortExt,
	} {
		if _, ok := parseRTP(b, &h); ok {
			t.Errorf("%s accepted", name)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { parseRTP(withExt, &h) }); allocs != 0 {
		t.Errorf("parseRTP allocates %v per packet", allocs)
	}
	if !muxedRTCP(rtcpRR(1)) || muxedRTCP(base) || !isRTCP(rtcpRR(1)) || isRTCP(bytes.Repeat([]byte{0}, 8)) {
		t.Error("RTCP detection wrong")
	}
}

func TestPTSet(t *testing.T) {
	var s ptSet
	for _, pt := range []uint8{0, 63, 64, 101, 127} {
		s.add(pt)
	}
	for pt := range uint8(128) {
		want := pt == 0 || pt == 63 || pt == 64 || pt == 101 || pt == 127
		if s.has(pt) != want {
			t.Errorf("has(%d) = %v", pt, !want)
		}
	}
	s.add(200)
	if s.has(200) {
		t.Error("out-of-range PT stored")
	}
}
