package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The self-checks run every scenario in testdata/sipp against its
// counterpart (SIPp talking to SIPp, with Go RTP peers where media matters),
// so a scenario is known to work before Blackbox sits between the two.

// sippPair starts uasScenario, then runs uacScenario against it and waits
// for both to finish.
func sippPair(t *testing.T, uasScenario string, uas SIPpOptions, uacScenario string, uac SIPpOptions) (*SIPp, *SIPp) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	server := startSIPp(t, ctx, uasScenario, uas)
	uac.Remote = server.LocalAddr
	client := runSIPp(t, ctx, uacScenario, uac)
	select {
	case <-server.Done():
	case <-ctx.Done():
		t.Fatalf("uas %s did not finish", uasScenario)
	}
	return server, client
}

// againstResponder runs a UAC scenario against a Go sipResponder.
func againstResponder(t *testing.T, ro responderOptions, scenario string, o SIPpOptions) (*sipResponder, *SIPp) {
	t.Helper()
	r := startSIPResponder(t, ro)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.Remote = r.Addr()
	return r, runSIPp(t, ctx, scenario, o)
}

func wantExit(t *testing.T, s *SIPp, code int) {
	t.Helper()
	if got := s.ExitCode(); got != code {
		t.Errorf("sipp %s exited %d, want %d%s", s.Scenario[strings.LastIndex(s.Scenario, "/")+1:], got, code, s.firstErrors())
	}
}

// answerMedia finds the SDP media address in the 200 OK a UAC received.
func answerMedia(t *testing.T, uac *SIPp) netip.AddrPort {
	t.Helper()
	for _, m := range uac.Messages(t) {
		if !m.Sent && m.IsResponse(200, "INVITE") {
			host, port, ok := m.sdpMedia()
			if !ok {
				t.Fatalf("200 OK without SDP media:\n%s", m.Body)
			}
			return netip.AddrPortFrom(netip.MustParseAddr(host), uint16(port))
		}
	}
	t.Fatal("no 200 OK to the INVITE")
	return netip.AddrPort{}
}

// messagesOf filters a SIPp log by direction and start-line prefix.
func messagesOf(msgs []sipMessage, sent bool, start string) []sipMessage {
	var out []sipMessage
	for _, m := range msgs {
		if m.Sent == sent && strings.HasPrefix(m.StartLine, start) {
			out = append(out, m)
		}
	}
	return out
}

func viaBranch(m sipMessage) string {
	for _, p := range strings.Split(m.Header("Via"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "branch="); ok {
			return v
		}
	}
	return ""
}

// telephoneEvents returns the RFC 4733 events in pkts (payload type 101)
// with their end flag.
func telephoneEvents(pkts []rtpPacket) (events []uint8, ended []bool) {
	for _, p := range pkts {
		if p.Header.PayloadType != 101 || len(p.Payload) < 4 {
			continue
		}
		events = append(events, p.Payload[0])
		ended = append(ended, p.Payload[1]&0x80 != 0)
	}
	return events, ended
}

func TestScenarioSelfCheck(t *testing.T) {
	requireTool(t, "sipp")
	alicePW := &digestCheck{Realm: "blackbox", Username: "alice", Password: "pw"}

	t.Run("register", func(t *testing.T) {
		t.Parallel()
		reg, c := sippPair(t,
			"uas-registrar", SIPpOptions{Keys: map[string]string{"user": "alice", "pass": "correct horse"}},
			"register", SIPpOptions{Service: "alice", AuthUser: "alice", AuthPass: "correct horse", Keys: map[string]string{"expires": "120"}})
		wantExit(t, reg, sippAllOK)
		wantExit(t, c, sippAllOK)
		msgs := c.Messages(t)
		regs := messagesOf(msgs, true, "REGISTER")
		if len(regs) != 2 || regs[0].Header("Authorization") != "" || !strings.Contains(regs[1].Header("Authorization"), `username="alice"`) {
			t.Errorf("want a plain REGISTER then one with Authorization, got %d REGISTERs", len(regs))
		}
		if got := regs[1].Header("Expires"); got != "120" {
			t.Errorf("Expires %q, want the key's 120", got)
		}
		if final, ok := finalResponse(msgs, "REGISTER"); !ok || final.Status() != 200 {
			t.Errorf("final response %q", final.StartLine)
		}
	})

	t.Run("register refused", func(t *testing.T) {
		t.Parallel()
		reg, c := sippPair(t,
			"uas-registrar", SIPpOptions{Keys: map[string]string{"user": "alice", "pass": "correct horse"}},
			"register-refused", SIPpOptions{Service: "alice", AuthUser: "alice", AuthPass: "wrong"})
		wantExit(t, reg, sippAllOK)
		wantExit(t, c, sippAllOK)
		if final, _ := finalResponse(c.Messages(t), "REGISTER"); final.Status() != 403 {
			t.Errorf("final response %q, want 403", final.StartLine)
		}
	})

	t.Run("register expecting 200 fails on refusal", func(t *testing.T) {
		t.Parallel()
		_, c := sippPair(t,
			"uas-registrar", SIPpOptions{Keys: map[string]string{"user": "alice", "pass": "correct horse"}},
			"register", SIPpOptions{Service: "alice", AuthUser: "alice", AuthPass: "wrong", Timeout: 5 * time.Second})
		wantExit(t, c, sippSomeFailed)
	})

	t.Run("register then answer inbound", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		registrar := startSIPp(t, ctx, "uas-registrar", SIPpOptions{Keys: map[string]string{"user": "bob", "pass": "pw"}})
		phone := startSIPp(t, ctx, "register-then-wait", SIPpOptions{
			Remote: registrar.LocalAddr, Service: "bob", AuthUser: "bob", AuthPass: "pw", OOCScenario: "uas-answer",
		})
		if _, err := phone.WaitForMessage(ctx, func(m sipMessage) bool { return !m.Sent && m.IsResponse(200, "REGISTER") }); err != nil {
			t.Fatal(err)
		}
		if registrar.Wait(t) != sippAllOK {
			t.Fatalf("registrar exited %d", registrar.ExitCode())
		}
		// The "trunk" calls the phone at the address it registered from.
		trunk := runSIPp(t, ctx, "uac-call", SIPpOptions{Remote: phone.LocalAddr, Service: "+15550100001", Keys: map[string]string{"caller": "+15557654321"}})
		wantExit(t, trunk, sippAllOK)
		wantExit(t, phone, sippAllOK)
		invites := messagesOf(phone.Messages(t), false, "INVITE")
		if len(invites) != 1 || !strings.Contains(invites[0].Header("From"), "+15557654321") {
			t.Errorf("phone did not take the inbound INVITE: %v", invites)
		}
	})

	t.Run("call with Go media both sides", func(t *testing.T) {
		t.Parallel()
		rep, carrier := newRTPPeer(t), newRTPPeer(t)
		uas, uac := sippPair(t,
			"uas-answer", SIPpOptions{Keys: rtpKeys(carrier)},
			"uac-call", SIPpOptions{Service: "+15550100002", Pause: 2 * time.Second, Keys: rtpKeys(rep)})
		wantExit(t, uas, sippAllOK)
		wantExit(t, uac, sippAllOK)
		if got := answerMedia(t, uac); got != carrier.Addr() {
			t.Errorf("answer SDP media %s, want the carrier peer %s", got, carrier.Addr())
		}
		offer := messagesOf(uas.Messages(t), false, "INVITE")
		if len(offer) != 1 {
			t.Fatalf("%d INVITEs at the UAS", len(offer))
		}
		if h, p, _ := offer[0].sdpMedia(); fmt.Sprintf("%s:%d", h, p) != rep.Addr().String() {
			t.Errorf("offer SDP media %s:%d, want the rep peer %s", h, p, rep.Addr())
		}
	})

	t.Run("call through a challenging trunk", func(t *testing.T) {
		t.Parallel()
		uas, uac := sippPair(t,
			"uas-answer-auth", SIPpOptions{Keys: map[string]string{"user": "blackbox", "pass": "trunk-pw"}},
			"uac-call", SIPpOptions{Service: "+15550100003", AuthUser: "blackbox", AuthPass: "trunk-pw", Pause: 200 * time.Millisecond})
		wantExit(t, uas, sippAllOK)
		wantExit(t, uac, sippAllOK)
		sent := uac.Messages(t)
		invites, acks := messagesOf(sent, true, "INVITE"), messagesOf(sent, true, "ACK")
		if len(invites) != 2 || len(acks) != 2 {
			t.Fatalf("%d INVITEs and %d ACKs sent, want 2 and 2", len(invites), len(acks))
		}
		if viaBranch(acks[0]) != viaBranch(invites[0]) {
			t.Errorf("ACK of the 401 has branch %q, want the INVITE's %q", viaBranch(acks[0]), viaBranch(invites[0]))
		}
		if viaBranch(acks[1]) == viaBranch(invites[1]) {
			t.Error("ACK of the 200 reuses the INVITE's branch; it is a new transaction")
		}
		auth := invites[1].Header("Authorization")
		if !strings.Contains(auth, `username="blackbox"`) {
			t.Errorf("second INVITE lacks credentials: %q", auth)
		}
		cseq := func(m sipMessage) string { return strings.Fields(m.Header("CSeq"))[0] }
		if cseq(invites[0]) != "1" || cseq(acks[0]) != "1" || cseq(invites[1]) != "2" || cseq(acks[1]) != "2" {
			t.Errorf("CSeqs INVITE %s ACK %s INVITE %s ACK %s, want 1 1 2 2", cseq(invites[0]), cseq(acks[0]), cseq(invites[1]), cseq(acks[1]))
		}
	})

	t.Run("challenging trunk refuses a wrong password", func(t *testing.T) {
		t.Parallel()
		uas, uac := sippPair(t,
			"uas-answer-auth", SIPpOptions{Keys: map[string]string{"user": "blackbox", "pass": "trunk-pw"}},
			"uac-expect-403", SIPpOptions{Service: "+15550100004", AuthUser: "blackbox", AuthPass: "nope"})
		wantExit(t, uas, sippSomeFailed)
		wantExit(t, uac, sippAllOK)
	})

	for _, tc := range []struct {
		code   int
		reason string
	}{{403, "Forbidden"}, {404, "Not Found"}, {480, "Temporarily Unavailable"}, {503, "Service Unavailable"}} {
		t.Run(fmt.Sprintf("expect %d", tc.code), func(t *testing.T) {
			t.Parallel()
			carrier, uac := againstResponder(t, responderOptions{Code: tc.code, Reason: tc.reason},
				fmt.Sprintf("uac-expect-%d", tc.code), SIPpOptions{Service: "+15550100005"})
			wantExit(t, uac, sippAllOK)
			// SIPp exits as it sends the ACK: give the responder a moment.
			deadline := time.Now().Add(2 * time.Second)
			for invites, acks := carrier.Counts(); (invites != 1 || acks != 1) && time.Now().Before(deadline); invites, acks = carrier.Counts() {
				time.Sleep(20 * time.Millisecond)
			}
			if invites, acks := carrier.Counts(); invites != 1 || acks != 1 {
				t.Errorf("carrier saw %d INVITEs and %d ACKs, want 1 and 1 (a wrong ACK branch makes it retransmit)", invites, acks)
			}
		})
	}

	t.Run("expect 503 fails on another code", func(t *testing.T) {
		t.Parallel()
		_, uac := againstResponder(t, responderOptions{Code: 486, Reason: "Busy Here"},
			"uac-expect-503", SIPpOptions{Service: "+15550100006", Timeout: 5 * time.Second})
		wantExit(t, uac, sippSomeFailed)
	})

	t.Run("expect 503 after a 407 challenge", func(t *testing.T) {
		t.Parallel()
		gw, uac := againstResponder(t, responderOptions{Code: 503, Reason: "Service Unavailable", Challenge: alicePW},
			"uac-expect-503", SIPpOptions{Service: "+15550100016", AuthUser: "alice", AuthPass: "pw"})
		wantExit(t, uac, sippAllOK)
		if invites, acks := gw.Counts(); invites != 2 || acks != 2 {
			t.Errorf("%d INVITEs and %d ACKs, want 2 and 2", invites, acks)
		}
		auths := gw.Auths()
		if len(auths) != 1 || !auths[0].Valid {
			t.Fatalf("digest not accepted by icholy/digest: %+v", auths)
		}
		if auths[0].URI != auths[0].RURI {
			t.Errorf("digest uri %q differs from the Request-URI %q", auths[0].URI, auths[0].RURI)
		}
	})

	t.Run("first of several challenges", func(t *testing.T) {
		t.Parallel()
		// RFC 8760 servers offer SHA-256 and MD5; SIPp 3.6.1 answers only the
		// first challenge and only MD5, and aborts (exit 255) otherwise. This
		// pins the limitation, so a SIPp that learns SHA-256 shows up here.
		for _, tc := range []struct {
			algs []string
			exit int
		}{{[]string{"MD5", "SHA-256"}, sippAllOK}, {[]string{"SHA-256", "MD5"}, 255}} {
			gw, uac := againstResponder(t, responderOptions{Code: 503, Reason: "Service Unavailable",
				Challenge: &digestCheck{Realm: "blackbox", Username: "alice", Password: "pw", Algorithms: tc.algs}},
				"uac-expect-503", SIPpOptions{Service: "+15550100018", AuthUser: "alice", AuthPass: "pw", Timeout: 5 * time.Second})
			if got := uac.ExitCode(); got != tc.exit {
				t.Errorf("challenges %v: sipp exit %d, want %d", tc.algs, got, tc.exit)
			}
			if auths := gw.Auths(); tc.exit == sippAllOK && (len(auths) != 1 || !auths[0].Valid) {
				t.Errorf("challenges %v: credentials %+v", tc.algs, auths)
			}
		}
	})

	t.Run("register against a real digest check", func(t *testing.T) {
		t.Parallel()
		reg, c := againstResponder(t, responderOptions{Challenge: &digestCheck{Realm: "blackbox", Username: "dave", Password: "pw"}},
			"register", SIPpOptions{Service: "dave", AuthUser: "dave", AuthPass: "pw"})
		wantExit(t, c, sippAllOK)
		if auths := reg.Auths(); len(auths) != 1 || !auths[0].Valid || auths[0].URI != auths[0].RURI {
			t.Errorf("REGISTER credentials %+v", auths)
		}
	})

	t.Run("wrong password after a 407 is refused", func(t *testing.T) {
		t.Parallel()
		gw, uac := againstResponder(t, responderOptions{Code: 503, Reason: "Service Unavailable", Challenge: alicePW},
			"uac-expect-403", SIPpOptions{Service: "+15550100017", AuthUser: "alice", AuthPass: "bad"})
		wantExit(t, uac, sippAllOK)
		if auths := gw.Auths(); len(auths) != 1 || auths[0].Valid {
			t.Errorf("a wrong password passed the digest check: %+v", auths)
		}
	})

	t.Run("cancel while ringing", func(t *testing.T) {
		t.Parallel()
		uas, uac := sippPair(t,
			"uas-no-answer", SIPpOptions{},
			"uac-cancel", SIPpOptions{Service: "+15550100007", Pause: 300 * time.Millisecond})
		wantExit(t, uas, sippAllOK)
		wantExit(t, uac, sippAllOK)
		sent := uac.Messages(t)
		inv, cancel := messagesOf(sent, true, "INVITE"), messagesOf(sent, true, "CANCEL")
		if len(inv) != 1 || len(cancel) == 0 || viaBranch(cancel[0]) != viaBranch(inv[0]) {
			t.Errorf("CANCEL must share the INVITE's branch: %d INVITEs, %d CANCELs", len(inv), len(cancel))
		}
	})

	t.Run("callee hangs up", func(t *testing.T) {
		t.Parallel()
		uas, uac := sippPair(t,
			"uas-answer-bye", SIPpOptions{Pause: 300 * time.Millisecond},
			"uac-call-expect-bye", SIPpOptions{Service: "+15550100008"})
		wantExit(t, uas, sippAllOK)
		wantExit(t, uac, sippAllOK)
		byes := messagesOf(uac.Messages(t), false, "BYE")
		if len(byes) != 1 {
			t.Fatalf("%d BYEs reached the caller", len(byes))
		}
		if from := byes[0].Header("From"); !strings.Contains(from, "+15550100008") || !strings.Contains(from, "tag=") {
			t.Errorf("callee's BYE From %q: want the callee with its tag", from)
		}
	})

	t.Run("caller plays a pcap bit-exact", func(t *testing.T) {
		t.Parallel()
		carrier := newRTPPeer(t)
		uas, uac := sippPair(t,
			"uas-answer", SIPpOptions{Keys: rtpKeys(carrier)},
			"uac-call-audio", SIPpOptions{Service: "+15550100009", Pause: 1500 * time.Millisecond, Keys: map[string]string{"audio": "tone-440-pcmu.pcap"}})
		wantExit(t, uas, sippAllOK)
		wantExit(t, uac, sippAllOK)
		got := carrier.Received()
		if len(got) < 50 {
			t.Fatalf("carrier got %d packets in 1.5 s, want about 75", len(got))
		}
		assertRTPSource(t, got, netip.MustParseAddr("127.0.0.1"), int(uac.MediaAddr.Port()), int(uac.MediaAddr.Port()))
		want, err := pcapRTP(audioPath("tone-440-pcmu.pcap"))
		if err != nil {
			t.Fatal(err)
		}
		var sent [][]byte
		for _, p := range want {
			sent = append(sent, p.Payload)
		}
		if run := longestPayloadRun(got, sent); run != len(got) {
			t.Errorf("only %d of %d packets match the pcap in sequence", run, len(got))
		}
		if frac := toneFraction(decodeRTP(got), sampleRate, 440); frac < 0.9 {
			t.Errorf("440 Hz fraction %.2f", frac)
		}
	})

	t.Run("callee plays a pcap", func(t *testing.T) {
		t.Parallel()
		rep := newRTPPeer(t)
		uas, uac := sippPair(t,
			"uas-answer-audio", SIPpOptions{Keys: map[string]string{"audio": "tone-1000-pcma.pcap"}},
			"uac-call", SIPpOptions{Service: "+15550100010", Pause: 1500 * time.Millisecond, Keys: rtpKeys(rep)})
		wantExit(t, uas, sippAllOK)
		wantExit(t, uac, sippAllOK)
		got := rep.Received()
		if len(got) < 50 {
			t.Fatalf("rep got %d packets, want about 75", len(got))
		}
		if pt := got[0].Header.PayloadType; pt != pcma.PayloadType {
			t.Errorf("payload type %d, want PCMA", pt)
		}
		if frac := toneFraction(decodeRTP(got), sampleRate, 1000); frac < 0.9 {
			t.Errorf("1 kHz fraction %.2f", frac)
		}
		if a := answerMedia(t, uac); a != uas.MediaAddr {
			t.Errorf("answer media %s, want SIPp's own socket %s", a, uas.MediaAddr)
		}
	})

	// DTMF: the digit's RFC 4733 events reach the peer on the other side.
	for _, tc := range []struct {
		name          string
		uas           string
		uasPause      time.Duration
		uac           string
		uacPause      time.Duration
		dtmf          string
		digit         uint8
		peerOnUASSide bool // the sender is the UAC, so the UAS's SDP points at the peer
	}{
		{"caller sends DTMF 1 and stays", "uas-answer", 0, "uac-call-dtmf", 700 * time.Millisecond, "dtmf_2833_1.pcap", 1, true},
		{"caller sends DTMF 2 and is hung up on", "uas-answer-bye", 2 * time.Second, "uac-call-dtmf-expect-bye", 700 * time.Millisecond, "dtmf_2833_2.pcap", 2, true},
		{"callee sends DTMF", "uas-answer-dtmf", 500 * time.Millisecond, "uac-call", 1500 * time.Millisecond, "dtmf_2833_1.pcap", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			peer := newRTPPeer(t)
			uasOpts := SIPpOptions{Pause: tc.uasPause, Keys: map[string]string{"dtmf": tc.dtmf}}
			uacOpts := SIPpOptions{Service: "+15550100011", Pause: tc.uacPause, Keys: map[string]string{"dtmf": tc.dtmf}}
			target := &uacOpts
			if tc.peerOnUASSide {
				target = &uasOpts
			}
			maps.Copy(target.Keys, rtpKeys(peer))
			uas, uac := sippPair(t, tc.uas, uasOpts, tc.uac, uacOpts)
			wantExit(t, uas, sippAllOK)
			wantExit(t, uac, sippAllOK)
			assertDigit(t, peer.Received(), tc.digit)
		})
	}

	t.Run("caller ID check", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			caller string
			want   int
		}{{"+15550100001", sippAllOK}, {"+12125550999", sippSomeFailed}} {
			uas, uac := sippPair(t,
				"uas-answer-check-cid", SIPpOptions{},
				"uac-call", SIPpOptions{Service: "+15550100014", Keys: map[string]string{"caller": tc.caller}})
			wantExit(t, uas, tc.want)
			wantExit(t, uac, sippAllOK)
		}
	})

	t.Run("tcp", func(t *testing.T) {
		t.Parallel()
		uas, uac := sippPair(t,
			"uas-answer", SIPpOptions{Transport: "tcp"},
			"uac-call", SIPpOptions{Transport: "tcp", Service: "+15550100015", Pause: 200 * time.Millisecond})
		wantExit(t, uas, sippAllOK)
		wantExit(t, uac, sippAllOK)
		for _, m := range uac.Messages(t) {
			if m.Transport != "TCP" {
				t.Fatalf("message over %s", m.Transport)
			}
		}
	})
}

// rtpKeys points a scenario's SDP at a Go peer.
func rtpKeys(p *rtpPeer) map[string]string {
	return map[string]string{"rtp_ip": p.Addr().Addr().String(), "rtp_port": fmt.Sprint(p.Addr().Port())}
}

// assertDigit checks that pkts carry RFC 4733 events for exactly digit, ending.
func assertDigit(t *testing.T, pkts []rtpPacket, digit uint8) {
	t.Helper()
	events, ended := telephoneEvents(pkts)
	if len(events) == 0 {
		t.Fatalf("no telephone-event among %d packets", len(pkts))
	}
	for _, e := range events {
		if e != digit {
			t.Fatalf("events %v, want only %d", events, digit)
		}
	}
	if !ended[len(ended)-1] {
		t.Error("the digit never ended (no E bit)")
	}
}
