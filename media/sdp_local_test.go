package media

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// An inbound caller is answered by Blackbox itself (announcement first);
// the rep's leg is offered the caller's codec later and the relay joins them.
func TestAnswerLocalThenLocalOffer(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s := newTestSession(t, e, SessionOptions{})
	a, b := newPhone(t), newPhone(t)
	ans, err := s.AnswerLocal(LegA, a.sdp("8 0 101", "a=rtpmap:101 telephone-event/8000", "a=sendrecv"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(ans)
	if !strings.Contains(body, "RTP/AVP 8 101") || strings.Contains(body, "PCMU") || !strings.Contains(body, "a=sendrecv") {
		t.Fatalf("local answer should pick the caller's first codec (PCMA) and keep telephone-event:\n%s", body)
	}
	if p := mediaPort(t, ans); p != s.LocalPort(LegA) {
		t.Fatalf("answer port %d, want leg A's %d", p, s.LocalPort(LegA))
	}
	offer, err := s.LocalOffer(LegB)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(offer), "RTP/AVP 8 101") {
		t.Fatalf("the rep's leg must be offered the caller's codec only:\n%s", offer)
	}
	out, err := s.Answer(LegB, b.sdp("8 101", "a=rtpmap:101 telephone-event/8000"))
	if err != nil || out != nil {
		t.Fatalf("answer to a local offer: %q %v", out, err)
	}
	pkt := rtpPacket(t, 8, 1, 160, 7, false, bytes.Repeat([]byte{0x55}, 160))
	a.send(sockRTP, local(s, LegA, sockRTP), pkt)
	if got, from := b.recv(sockRTP); !bytes.Equal(got, pkt) || from != local(s, LegB, sockRTP) {
		t.Fatalf("relay after local answer: from %v, equal=%v", from, bytes.Equal(got, pkt))
	}
	// A rep that insists on the other G.711 law cannot be joined.
	s2 := newTestSession(t, e, SessionOptions{})
	if _, err := s2.AnswerLocal(LegA, a.sdp("8")); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.LocalOffer(LegB); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Answer(LegB, b.sdp("0")); err == nil {
		t.Fatal("PCMU answer to a PCMA-only offer accepted")
	}
	if _, err := s.AnswerLocal(LegA, []byte("garbage")); err == nil {
		t.Fatal("garbage offer answered")
	}
}

func mediaPort(t *testing.T, body []byte) int {
	t.Helper()
	for _, line := range strings.Split(string(body), "\r\n") {
		var port int
		if n, _ := fmt.Sscanf(line, "m=audio %d", &port); n == 1 {
			return port
		}
	}
	t.Fatalf("no m=audio line in\n%s", body)
	return 0
}
