package media

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

func mustParse(t *testing.T, b []byte) *sdp.SessionDescription {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.Unmarshal(b); err != nil {
		t.Fatalf("output SDP does not parse: %v\n%s", err, b)
	}
	return &d
}

// answerSDP is what a far party answers, with its own address and port.
func answerSDP(port int, formats string, extra ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=far 7 7 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n", port, formats)
	for _, x := range extra {
		b.WriteString(x + "\r\n")
	}
	return []byte(b.String())
}

func originOf(t *testing.T, b []byte) sdp.Origin {
	t.Helper()
	return mustParse(t, b).Origin
}

func TestOfferRewritesTransport(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{ID: "t"})

	out, err := s.Offer(LegA, readSDP(t, "basic.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	d := mustParse(t, out)
	if d.Origin.Username != "blackbox" || d.Origin.UnicastAddress != "127.0.0.1" {
		t.Errorf("origin not Blackbox's own: %+v", d.Origin)
	}
	if d.Origin.SessionID == 2890844526 {
		t.Error("offerer's session id leaked through")
	}
	if !hasLine(out, "c=IN IP4 127.0.0.1") {
		t.Errorf("c= not the external address:\n%s", out)
	}
	bport := s.LocalPort(LegB)
	for _, want := range []string{
		fmt.Sprintf("m=audio %d RTP/AVP 0 8 101", bport),
		fmt.Sprintf("a=rtcp:%d", bport+1),
		"a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-16",
		"a=ptime:20",
		"a=sendrecv",
	} {
		if !hasLine(out, want) {
			t.Errorf("offer to B lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "192.0.2.10") {
		t.Errorf("offerer's address leaked:\n%s", out)
	}
	if bport%2 != 0 {
		t.Errorf("RTP port %d is odd", bport)
	}
}

func TestOfferFiltersCodecsAndAnswerKeepsMLines(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})

	out, err := s.Offer(LegA, readSDP(t, "opus_video.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	d := mustParse(t, out)
	if len(d.MediaDescriptions) != 1 {
		t.Fatalf("offer to B has %d m= lines, want only audio:\n%s", len(d.MediaDescriptions), out)
	}
	if got := strings.Join(d.MediaDescriptions[0].MediaName.Formats, " "); got != "0 8 97 13" {
		t.Errorf("formats %q, want PCMU PCMA telephone-event/97 CN", got)
	}
	for _, bad := range []string{"opus", "G729", "ice-", "candidate", "rtcp-mux", "rtcp-fb", "VP8"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("offer to B still carries %q:\n%s", bad, out)
		}
	}

	ans, err := s.Answer(LegB, answerSDP(40000, "8 97", "a=rtpmap:97 telephone-event/8000", "a=ptime:20"))
	if err != nil {
		t.Fatal(err)
	}
	ad := mustParse(t, ans)
	if len(ad.MediaDescriptions) != 2 {
		t.Fatalf("answer to A has %d m= lines, its offer had 2:\n%s", len(ad.MediaDescriptions), ans)
	}
	audio, video := ad.MediaDescriptions[0], ad.MediaDescriptions[1]
	if audio.MediaName.Port.Value != s.LocalPort(LegA) {
		t.Errorf("audio port %d, want A's local port %d", audio.MediaName.Port.Value, s.LocalPort(LegA))
	}
	if got := strings.Join(audio.MediaName.Formats, " "); got != "8 97" {
		t.Errorf("answer formats %q, want the far side's choice \"8 97\"", got)
	}
	if video.MediaName.Media != "video" || video.MediaName.Port.Value != 0 {
		t.Errorf("video m= line not declined: %v", video.MediaName)
	}
	if s.neg[LegA].codec.kind != kindPCMA || s.neg[LegB].codec.kind != kindPCMA {
		t.Errorf("negotiated codecs A=%v B=%v, want PCMA on both", s.neg[LegA].codec, s.neg[LegB].codec)
	}
}

func TestOfferErrors(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
	// mk builds a valid SDP around one c= and the media section.
	mk := func(c, media string) string { return head + "c=" + c + "\r\nt=0 0\r\n" + media }
	cases := []struct {
		name string
		sdp  string
		want error
	}{
		{"empty", "", ErrBadSDP},
		{"garbage", "hello world", ErrBadSDP},
		{"no m line", head + "t=0 0\r\n", ErrBadSDP},
		{"no c line", string(readSDP(t, "no_conn.sdp")), ErrBadSDP},
		{"hostname", mk("IN IP4 pbx.example.com", "m=audio 4000 RTP/AVP 0\r\n"), ErrBadSDP},
		{"multicast", mk("IN IP4 224.2.1.1", "m=audio 4000 RTP/AVP 0\r\n"), ErrBadSDP},
		{"family mismatch", mk("IN IP4 ::1", "m=audio 4000 RTP/AVP 0\r\n"), ErrBadSDP},
		{"ipv6 party on ipv4 bind", string(readSDP(t, "ipv6.sdp")), ErrBadSDP},
		{"bad nettype", mk("ATM NSAP 47.0005", "m=audio 4000 RTP/AVP 0\r\n"), ErrBadSDP},
		{"privileged port", mk("IN IP4 192.0.2.1", "m=audio 53 RTP/AVP 0\r\n"), ErrBadSDP},
		{"port range", mk("IN IP4 192.0.2.1", "m=audio 4000/2 RTP/AVP 0\r\n"), ErrBadSDP},
		{"port too big", mk("IN IP4 192.0.2.1", "m=audio 70000 RTP/AVP 0\r\n"), ErrBadSDP},
		{"no room for rtcp", mk("IN IP4 192.0.2.1", "m=audio 65535 RTP/AVP 0\r\n"), ErrBadSDP},
		{"bad rtcp attr", mk("IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 0\r\na=rtcp:x\r\n"), ErrBadSDP},
		{"bad format", mk("IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 0 abc\r\n"), ErrBadSDP},
		{"bad rtpmap", mk("IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0\r\n"), ErrBadSDP},
		{"g729 only", string(readSDP(t, "g729_only.sdp")), ErrNoCodec},
		{"webrtc", string(readSDP(t, "webrtc.sdp")), ErrNoCodec},
		{"video only", mk("IN IP4 192.0.2.1", "m=video 4000 RTP/AVP 96\r\n"), ErrNoCodec},
		{"audio declined", mk("IN IP4 192.0.2.1", "m=audio 0 RTP/AVP 0\r\n"), ErrNoCodec},
		{"pcmu at 16k", mk("IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMU/16000\r\n"), ErrNoCodec},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := s.Offer(LegA, []byte(c.sdp))
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v; out:\n%s", err, c.want, out)
			}
		})
	}
	if s.offer != nil || s.neg[LegA].known {
		t.Error("a failed offer changed the session state")
	}
}

func TestIPv6Offer(t *testing.T) {
	e := newTestEngine(t, 4, func(o *Options) {
		o.BindAddr = netipMust("::")
		o.ExternalAddr = netipMust("2001:db8::100")
	})
	s := newTestSession(t, e, SessionOptions{})
	out, err := s.Offer(LegA, readSDP(t, "ipv6.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(out, "c=IN IP6 2001:db8::100") {
		t.Errorf("want IP6 c= line:\n%s", out)
	}
	r := s.legs[LegA].remote.Load()
	if got := r.addr[sockRTCP].String(); got != "[2001:db8::2]:30011" {
		t.Errorf("RTCP destination from a=rtcp = %s", got)
	}
	if got := r.addr[sockRTP].String(); got != "[2001:db8::1]:30000" {
		t.Errorf("RTP destination = %s", got)
	}
}

func TestHoldResumeAndVersions(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	offerA := readSDP(t, "basic.sdp")
	toB, err := s.Offer(LegA, offerA)
	if err != nil {
		t.Fatal(err)
	}
	toA, err := s.Answer(LegB, answerSDP(40000, "0 101", "a=rtpmap:101 telephone-event/8000"))
	if err != nil {
		t.Fatal(err)
	}
	vB, vA := originOf(t, toB).SessionVersion, originOf(t, toA).SessionVersion
	if originOf(t, toB).SessionID == originOf(t, toA).SessionID {
		t.Error("both legs got the same o= session id")
	}

	// The same re-INVITE again: nothing changed, same version.
	again, err := s.Offer(LegA, offerA)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(toB) {
		t.Errorf("unchanged re-offer produced a different SDP:\n%s\nvs\n%s", again, toB)
	}

	// A puts B on hold.
	held := strings.Replace(string(offerA), "a=sendrecv", "a=sendonly", 1)
	toB2, err := s.Offer(LegA, []byte(held))
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(toB2, "a=sendonly") || hasLine(toB2, "a=sendrecv") {
		t.Errorf("hold direction not passed to B:\n%s", toB2)
	}
	if got := originOf(t, toB2).SessionVersion; got != vB+1 {
		t.Errorf("B's o= version %d after hold, want %d", got, vB+1)
	}
	toA2, err := s.Answer(LegB, answerSDP(40000, "0 101", "a=rtpmap:101 telephone-event/8000", "a=recvonly"))
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(toA2, "a=recvonly") {
		t.Errorf("recvonly not passed to A:\n%s", toA2)
	}
	if got := originOf(t, toA2).SessionVersion; got != vA+1 {
		t.Errorf("A's o= version %d after hold, want %d", got, vA+1)
	}
	if !s.neg[LegB].exempt || s.neg[LegA].exempt {
		t.Errorf("exempt A=%v B=%v, want only the held B exempt", s.neg[LegA].exempt, s.neg[LegB].exempt)
	}

	// Old-style hold: c=0.0.0.0 passes through.
	toB3, err := s.Offer(LegA, readSDP(t, "hold_rfc2543.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(toB3, "c=IN IP4 0.0.0.0") {
		t.Errorf("c=0.0.0.0 hold not passed to B:\n%s", toB3)
	}
	if _, ok := s.legs[LegA].dest(sockRTP); ok {
		t.Error("A on c=0.0.0.0 hold still has a destination")
	}

	// Resume.
	toB4, err := s.Offer(LegA, offerA)
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(toB4, "a=sendrecv") || !hasLine(toB4, "c=IN IP4 127.0.0.1") {
		t.Errorf("resume not passed to B:\n%s", toB4)
	}
	if _, err := s.Answer(LegB, answerSDP(40000, "0 101", "a=rtpmap:101 telephone-event/8000")); err != nil {
		t.Fatal(err)
	}
	if s.neg[LegB].exempt || s.neg[LegA].exempt {
		t.Error("a leg is still exempt after resume")
	}
	if got, ok := s.legs[LegA].dest(sockRTP); !ok || got.String() != "192.0.2.10:49170" {
		t.Errorf("A's destination after resume = %v %v", got, ok)
	}
}

func TestReofferFromBKeepsALayout(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	if _, err := s.Offer(LegA, readSDP(t, "opus_video.sdp")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Answer(LegB, answerSDP(40000, "0")); err != nil {
		t.Fatal(err)
	}
	// B re-INVITEs (say, to hold A): A must get an offer with both its m= lines.
	toA, err := s.Offer(LegB, answerSDP(40000, "0 8", "a=sendonly"))
	if err != nil {
		t.Fatal(err)
	}
	d := mustParse(t, toA)
	if len(d.MediaDescriptions) != 2 {
		t.Fatalf("re-offer to A has %d m= lines, want 2 (audio, declined video):\n%s", len(d.MediaDescriptions), toA)
	}
	if d.MediaDescriptions[0].MediaName.Port.Value != s.LocalPort(LegA) || d.MediaDescriptions[1].MediaName.Port.Value != 0 {
		t.Errorf("layout wrong:\n%s", toA)
	}
	// A answers with both lines; B gets exactly its one m= line back.
	ansA := "v=0\r\no=- 3912233 2 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n" +
		"m=audio 7078 RTP/AVP 0\r\na=recvonly\r\nm=video 0 RTP/AVP 98\r\n"
	toB, err := s.Answer(LegA, []byte(ansA))
	if err != nil {
		t.Fatal(err)
	}
	bd := mustParse(t, toB)
	if len(bd.MediaDescriptions) != 1 || !hasLine(toB, "a=recvonly") {
		t.Errorf("answer to B wrong:\n%s", toB)
	}
	if got := strings.Join(bd.MediaDescriptions[0].MediaName.Formats, " "); got != "0" {
		t.Errorf("answer to B formats %q, want 0", got)
	}
}

func TestAnswerErrors(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	if _, err := s.Answer(LegB, answerSDP(40000, "0")); !errors.Is(err, ErrBadSDP) {
		t.Fatalf("answer with no offer: err = %v, want ErrBadSDP", err)
	}
	if _, err := s.Offer(LegA, readSDP(t, "basic.sdp")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Answer(LegA, answerSDP(40000, "0")); !errors.Is(err, ErrBadSDP) {
		t.Errorf("answer from the offerer's own leg: err = %v, want ErrBadSDP", err)
	}
	cases := []struct {
		name string
		sdp  []byte
		want error
	}{
		{"two m lines", append(answerSDP(40000, "0"), "m=video 0 RTP/AVP 96\r\n"...), ErrBadSDP},
		{"declined", answerSDP(0, "0"), ErrNoCodec},
		{"codec not offered", answerSDP(40000, "18", "a=rtpmap:18 G729/8000"), ErrNoCodec},
		{"bad port", answerSDP(80, "0"), ErrBadSDP},
		{"garbage", []byte("v=0\r\nx"), ErrBadSDP},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := s.Answer(LegB, c.sdp); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	if s.neg[LegB].known {
		t.Error("a failed answer changed B's state")
	}
}

func TestProvisionalThenFinalAnswer(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	if _, err := s.Offer(LegA, readSDP(t, "basic.sdp")); err != nil {
		t.Fatal(err)
	}
	// 183 from one media server, 200 from another: both answers apply.
	first, err := s.Answer(LegB, answerSDP(40000, "0"))
	if err != nil {
		t.Fatal(err)
	}
	retrans, err := s.Answer(LegB, answerSDP(40000, "0"))
	if err != nil || string(retrans) != string(first) {
		t.Fatalf("retransmitted answer gave a different SDP (err %v)", err)
	}
	second, err := s.Answer(LegB, answerSDP(40002, "8"))
	if err != nil {
		t.Fatal(err)
	}
	if originOf(t, second).SessionVersion != originOf(t, first).SessionVersion+1 {
		t.Error("changed answer did not bump the version")
	}
	if got, _ := s.legs[LegB].dest(sockRTP); got.Port() != 40002 {
		t.Errorf("B's destination %v, want the final answer's port", got)
	}
}

func TestLateOffer(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	// A's INVITE had no SDP; B's 200 carries the offer, A's ACK the answer.
	toA, err := s.Offer(LegB, answerSDP(40000, "8 0 101", "a=rtpmap:101 telephone-event/8000"))
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(toA, fmt.Sprintf("m=audio %d RTP/AVP 8 0 101", s.LocalPort(LegA))) {
		t.Errorf("offer to A:\n%s", toA)
	}
	toB, err := s.Answer(LegA, readSDP(t, "basic.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(toB, fmt.Sprintf("m=audio %d RTP/AVP 0 101", s.LocalPort(LegB))) {
		t.Errorf("answer to B should carry A's first codec:\n%s", toB)
	}
}

func TestLocalOffer(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	out, err := s.LocalOffer(LegB)
	if err != nil {
		t.Fatal(err)
	}
	port := s.LocalPort(LegB)
	for _, want := range []string{
		fmt.Sprintf("m=audio %d RTP/AVP 0 8 101", port),
		"a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
		fmt.Sprintf("a=rtcp:%d", port+1), "a=sendrecv",
	} {
		if !hasLine(out, want) {
			t.Errorf("local offer lacks %q:\n%s", want, out)
		}
	}
	got, err := s.Answer(LegB, answerSDP(40000, "8 101", "a=rtpmap:101 telephone-event/8000"))
	if err != nil || got != nil {
		t.Fatalf("answer to a local offer = %q, %v; want nil, nil", got, err)
	}
	// A now gets an offer limited to B's law, since nothing is transcoded.
	toA, err := s.LocalOffer(LegA)
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(toA, fmt.Sprintf("m=audio %d RTP/AVP 8 101", s.LocalPort(LegA))) {
		t.Errorf("offer to A should carry only B's codec:\n%s", toA)
	}
	if _, err := s.Answer(LegA, answerSDP(40010, "0")); !errors.Is(err, ErrNoCodec) {
		t.Errorf("A answering the other law: err = %v, want ErrNoCodec", err)
	}
	if _, err := s.Answer(LegA, answerSDP(40010, "8")); err != nil {
		t.Fatal(err)
	}
	if s.neg[LegA].codec.kind != kindPCMA {
		t.Error("A's codec not recorded")
	}
}

func TestDynamicTelephoneEventPT(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	offer := strings.ReplaceAll(string(readSDP(t, "basic.sdp")), "101", "96")
	out, err := s.Offer(LegA, []byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(out, "a=rtpmap:96 telephone-event/8000") || !hasLine(out, "m=audio "+strconv.Itoa(s.LocalPort(LegB))+" RTP/AVP 0 8 96") {
		t.Errorf("offerer's dynamic PT not kept:\n%s", out)
	}
	// B numbers it differently; each leg's DTMF is recognised under both.
	if _, err := s.Answer(LegB, answerSDP(40000, "0 101", "a=rtpmap:101 telephone-event/8000")); err != nil {
		t.Fatal(err)
	}
	for _, x := range []Leg{LegA, LegB} {
		r := s.legs[x].remote.Load()
		if !r.dtmf.has(96) || !r.dtmf.has(101) {
			t.Errorf("leg %v DTMF PTs miss 96 or 101", x)
		}
	}
}

func TestAddressChangeResetsLatch(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	if _, err := s.Offer(LegA, readSDP(t, "basic.sdp")); err != nil {
		t.Fatal(err)
	}
	src := netipMustPort("192.0.2.10:49170")
	s.legs[LegA].ep[sockRTP].latched.Store(&src)
	// Hold and resume to the same address keep the latch.
	for _, f := range []string{"hold_rfc2543.sdp", "basic.sdp"} {
		if _, err := s.Offer(LegA, readSDP(t, f)); err != nil {
			t.Fatal(err)
		}
		if s.legs[LegA].ep[sockRTP].latched.Load() == nil {
			t.Fatalf("latch lost after %s", f)
		}
	}
	moved := strings.ReplaceAll(string(readSDP(t, "basic.sdp")), "49170", "50000")
	if _, err := s.Offer(LegA, []byte(moved)); err != nil {
		t.Fatal(err)
	}
	if s.legs[LegA].ep[sockRTP].latched.Load() != nil {
		t.Error("latch kept after the party moved to a new port")
	}
}
