package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Unit tests of the harness's own tools: each must be able to fail, or the
// end-to-end tests built on it prove nothing.

func TestWAVRoundTrip(t *testing.T) {
	in := &wavAudio{Rate: 8000, Channels: [][]int16{sine(8000, 440, 9000, 800), sine(8000, 1000, 4000, 800)}}
	out, err := parseWAV(encodeWAV(in))
	if err != nil {
		t.Fatal(err)
	}
	if out.Rate != 8000 || len(out.Channels) != 2 || !slices.Equal(out.Channels[0], in.Channels[0]) || !slices.Equal(out.Channels[1], in.Channels[1]) {
		t.Fatal("stereo round trip changed the audio")
	}
	if d := out.Duration(); d != 100*time.Millisecond {
		t.Errorf("duration %v", d)
	}

	good := encodeWAV(&wavAudio{Rate: 8000, Channels: [][]int16{{1, 2, 3, 4}}})
	eightBit := bytes.Clone(good)
	binary.LittleEndian.PutUint16(eightBit[34:36], 8)
	for name, data := range map[string][]byte{
		"empty":      nil,
		"not riff":   append([]byte("RIFX"), good[4:]...),
		"8-bit":      eightBit,
		"no data":    good[:36],
		"short fmt":  append(append(bytes.Clone(good[:12]), "fmt \x04\x00\x00\x00"...), 1, 0, 1, 0),
		"fmt beyond": append(bytes.Clone(good[:12]), "fmt \xff\x00\x00\x00"...),
	} {
		if _, err := parseWAV(data); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
	// A writer killed mid-file leaves a data chunk shorter than its header
	// says: the samples present are still read.
	cut, err := parseWAV(good[:len(good)-2])
	if err != nil || len(cut.Channels[0]) != 3 {
		t.Errorf("truncated data chunk: %v, %d samples", err, len(cut.Channels[0]))
	}
}

func TestToneFraction(t *testing.T) {
	tone := sine(8000, 440, 10000, 8000)
	if f := toneFraction(tone, 8000, 440); f < 0.98 {
		t.Errorf("pure 440 Hz: fraction %.3f at 440", f)
	}
	if f := toneFraction(tone, 8000, 1000); f > 0.01 {
		t.Errorf("pure 440 Hz: fraction %.3f at 1000", f)
	}
	if f := toneFraction(make([]int16, 800), 8000, 440); f != 0 {
		t.Errorf("silence: fraction %v", f)
	}
	mix := make([]int16, 8000)
	other := sine(8000, 1000, 10000, 8000)
	for i := range mix {
		mix[i] = tone[i]/2 + other[i]/2
	}
	for _, f := range []float64{440, 1000} {
		if got := toneFraction(mix, 8000, f); got < 0.45 || got > 0.55 {
			t.Errorf("equal mix: fraction %.3f at %v, want about 0.5", got, f)
		}
	}
	prof := toneProfile(append(make([]int16, 1600), tone[:1600]...), 8000, 440, 100*time.Millisecond)
	if len(prof) != 4 || prof[0].RMS != 0 || prof[1].RMS != 0 || prof[2].Fraction < 0.9 || prof[3].Start != 300*time.Millisecond {
		t.Errorf("profile of silence then tone: %+v", prof)
	}
}

func TestG711(t *testing.T) {
	pcm := sine(8000, 1000, 12000, 1000) // 6.25 frames: the tail is padded
	for _, c := range []g711Codec{pcmu, pcma} {
		frames := c.Encode(pcm)
		if len(frames) != 7 || len(frames[6]) != frameSamples {
			t.Fatalf("%s: %d frames", c.Name, len(frames))
		}
		back := c.Decode(frames)[:len(pcm)]
		if f := toneFraction(back, 8000, 1000); f < 0.97 {
			t.Errorf("%s round trip: fraction %.3f", c.Name, f)
		}
		if got, err := codecByPT(c.PayloadType); err != nil || got.Name != c.Name {
			t.Errorf("codecByPT(%d) = %v, %v", c.PayloadType, got.Name, err)
		}
	}
	if _, err := codecByPT(18); err == nil {
		t.Error("G.729 accepted as G.711")
	}
	a, b := noiseFrames(1, 50), noiseFrames(1, 50)
	if !slices.EqualFunc(a, b, bytes.Equal) {
		t.Error("noise frames not reproducible from the seed")
	}
	for i := 1; i < len(a); i++ {
		if bytes.Equal(a[i], a[i-1]) {
			t.Fatal("noise frames repeat")
		}
	}
}

func TestPcapRoundTrip(t *testing.T) {
	frames := noiseFrames(7, 25)
	data, err := rtpPcap(rtpStream{PayloadType: 8, SSRC: 0xabc, Frames: frames})
	if err != nil {
		t.Fatal(err)
	}
	dgrams, err := parsePcapUDP(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(dgrams) != 25 {
		t.Fatalf("%d datagrams", len(dgrams))
	}
	for i, d := range dgrams {
		if d.At != time.Duration(i)*frameInterval || d.Dst.Port() != 40002 {
			t.Fatalf("packet %d at %v to %v", i, d.At, d.Dst)
		}
		if !bytes.Equal(d.Payload[12:], frames[i]) {
			t.Fatalf("packet %d payload differs", i)
		}
	}
	for name, bad := range map[string][]byte{
		"short":      data[:10],
		"pcapng":     append([]byte{0x0a, 0x0d, 0x0d, 0x0a}, data[4:]...),
		"truncated":  data[:len(data)-5],
		"raw ip lnk": append(append(bytes.Clone(data[:20]), 101, 0, 0, 0), data[24:]...),
	} {
		if _, err := parsePcapUDP(bad); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
	if fileExists(sippPcapDir + "/g711a.pcap") {
		pkts, err := pcapRTP(sippPcapDir + "/g711a.pcap")
		if err != nil || len(pkts) != 236 || pkts[0].PayloadType != 8 {
			t.Errorf("sip-tester's g711a.pcap: %d packets, %v", len(pkts), err)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP blackbox_calls_total Calls.
# TYPE blackbox_calls_total counter
blackbox_calls_total{direction="outbound",result="answered"} 3
blackbox_calls_total{direction="inbound",result="answered"} 2
blackbox_calls_total{direction="outbound",result="failed"} 1 1700000000000
blackbox_rtp_ports_in_use 4
blackbox_build_info{version="v1 \"quoted\"\\x",goversion="go1.26"} 1
blackbox_upload_seconds_bucket{le="+Inf"} 7
blackbox_big 1.5e+06
`
	m, err := parseMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Get("blackbox_calls_total", "direction", "outbound", "result", "failed"); !ok || v != 1 {
		t.Errorf("Get = %v %v", v, ok)
	}
	if s := m.Sum("blackbox_calls_total", "result", "answered"); s != 5 {
		t.Errorf("Sum = %v", s)
	}
	if v, _ := m.Get("blackbox_build_info"); v != 1 {
		t.Error("build info")
	}
	if _, ok := m.Get("blackbox_build_info", "version", `v1 "quoted"\x`); !ok {
		t.Error("escaped label value not decoded")
	}
	if got := m.LabelValues("blackbox_calls_total", "direction"); !slices.Equal(got, []string{"inbound", "outbound"}) {
		t.Errorf("LabelValues = %v", got)
	}
	if v, _ := m.Get("blackbox_big"); v != 1.5e6 {
		t.Errorf("exponent: %v", v)
	}
	if _, ok := m.Get("blackbox_missing"); ok {
		t.Error("found a missing metric")
	}
	for _, bad := range []string{"novalue", `x{a="b} 1`, "x{a} 1", "x abc"} {
		if _, err := parseMetrics(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseSIPpMessages(t *testing.T) {
	log := "----------------------------------------------- 2026-12-03 14:16:29.108102\r\n" +
		"UDP message sent (336 bytes):\r\n\r\n" +
		"INVITE sip:+15550100001@127.0.0.1:5060 SIP/2.0\r\n" +
		"v: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1\r\n" +
		"f: <sip:alice@127.0.0.1>;tag=1\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Subject: folded\r\n  continued\r\n" +
		"Content-Type: application/sdp\r\n\r\n" +
		"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 0 101\r\n\r\n" +
		"----------------------------------------------- 2026-12-03 14:16:29.208102\r\n" +
		"UDP message received [330] bytes :\r\n\r\n" +
		"SIP/2.0 407 Proxy Authentication Required\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Proxy-Authenticate: Digest realm=\"blackbox\"\r\n\r\n" +
		"----------------------------------------------- 2026-12-03 14:16:29.308102\r\n" +
		"UDP message received [330] bytes :\r\n\r\n" +
		"SIP/2.0 503 Service Unavailable\r\n" +
		"CSeq: 2 INVITE\r\n\r\n"
	msgs := parseSIPpMessages(log)
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	inv := msgs[0]
	if !inv.Sent || !inv.IsRequest("INVITE") || inv.Status() != 0 || inv.Transport != "UDP" {
		t.Errorf("invite: %+v", inv)
	}
	if inv.Header("From") != "<sip:alice@127.0.0.1>;tag=1" || inv.Header("via") == "" {
		t.Error("compact headers not found by full name")
	}
	if inv.Header("Subject") != "folded continued" {
		t.Errorf("folded header %q", inv.Header("Subject"))
	}
	if h, p, ok := inv.sdpMedia(); !ok || h != "127.0.0.1" || p != 40000 {
		t.Errorf("sdp media %s %d %v", h, p, ok)
	}
	if inv.At.IsZero() {
		t.Error("timestamp not parsed")
	}
	if !msgs[1].IsResponse(407, "INVITE") || msgs[1].Sent {
		t.Errorf("407: %+v", msgs[1])
	}
	if final, ok := finalResponse(msgs, "INVITE"); !ok || final.Status() != 503 {
		t.Errorf("final response %q", final.StartLine)
	}
	if _, ok := finalResponse(msgs, "BYE"); ok {
		t.Error("final response to a BYE never sent")
	}
}

func TestRTPPeer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, b := newRTPPeer(t), newRTPPeer(t)
	if a.Addr().Port()%2 != 0 {
		t.Errorf("odd RTP port %d", a.Addr().Port())
	}
	frames := noiseFrames(3, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Send(ctx, b.Addr(), rtpStream{PayloadType: 0, SSRC: 42, Frames: frames, Interval: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitReceived(ctx, 10); err != nil {
		t.Fatal(err)
	}
	got := b.Received()
	assertRTPSource(t, got, a.Addr().Addr(), int(a.Addr().Port()), int(a.Addr().Port()))
	if run := longestPayloadRun(got, a.Sent()); run != 10 {
		t.Errorf("payload run %d, want 10", run)
	}
	for i, p := range got {
		if p.Header.SSRC != 42 || p.Header.SequenceNumber != got[0].Header.SequenceNumber+uint16(i) || p.Header.Marker != (i == 0) {
			t.Fatalf("packet %d header %+v", i, p.Header)
		}
	}
	// A changed byte shortens the run; a foreign datagram is not RTP.
	got[5].Payload = bytes.Clone(got[5].Payload)
	got[5].Payload[0] ^= 1
	if run := longestPayloadRun(got, a.Sent()); run != 5 {
		t.Errorf("run across a corrupted packet: %d, want 5", run)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("not rtp"))
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for b.NotRTP() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if b.NotRTP() != 1 || len(b.Received()) != 10 {
		t.Errorf("garbage datagram: notRTP %d, received %d", b.NotRTP(), len(b.Received()))
	}

	// A delayed stream waits before its first packet.
	start := time.Now()
	if err := a.Send(ctx, b.Addr(), rtpStream{Frames: noiseFrames(5, 1), Delay: 100 * time.Millisecond}); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Errorf("delayed send: %v after %v", err, time.Since(start))
	}

	// A background sender stops when asked, and waiting fails on close.
	snd := a.StartSending(t, b.Addr(), rtpStream{Frames: noiseFrames(4, 1000)})
	time.Sleep(50 * time.Millisecond)
	if err := snd.Stop(); err != nil {
		t.Errorf("stopped sender: %v", err)
	}
	a.Close()
	b.Close()
	if err := b.WaitReceived(ctx, 5000); err == nil {
		t.Error("WaitReceived succeeded on a closed peer")
	}
	var src []rtpPacket
	src = append(src, rtpPacket{From: netip.MustParseAddrPort("127.0.0.1:1000")}, rtpPacket{From: netip.MustParseAddrPort("127.0.0.1:1002")})
	if len(rtpSources(src)) != 2 {
		t.Error("two sources not told apart")
	}
}

func TestPorts(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p := freePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	lo, hi := rtpPortRange(t, 100)
	lo2, hi2 := rtpPortRange(t, 100)
	if hi-lo+1 != 100 || hi2-lo2+1 != 100 || (lo2 <= hi && lo <= hi2) {
		t.Errorf("ranges %d-%d and %d-%d", lo, hi, lo2, hi2)
	}
	if !udpRangeFree(lo, hi) {
		t.Error("range not free")
	}
	m := sippMediaPort(t)
	if m%2 != 0 || m >= lo && m <= hi {
		t.Errorf("sipp media port %d", m)
	}
}
