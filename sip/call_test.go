package sip_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/blackbox-gw/blackbox/store"
)

func inRange(ap netip.AddrPort, lo, hi int) bool {
	return ap.Addr() == netip.MustParseAddr("127.0.0.1") && int(ap.Port()) >= lo && int(ap.Port()) <= hi
}

func calls(t *testing.T, g *gateway, tenant string) []store.Call {
	t.Helper()
	p, err := g.db.AdminScope(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := g.db.In(p).Calls(context.Background(), store.CallFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// waitCall polls the store until the newest call of tenant satisfies ok.
func waitCall(t *testing.T, g *gateway, tenant string, ok func(store.Call) bool) store.Call {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs := calls(t, g, tenant)
		if len(cs) > 0 && ok(cs[0]) {
			return cs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("call record never reached the expected state: %+v", cs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOutboundCallAnchorsMedia(t *testing.T) {
	g, tr, p := startOutbound(t, gatewayOptions{rtpPorts: [2]int{31100, 31199}})
	repMedia := newRTPPeer(t, "127.0.0.1")

	d, err := p.dial(t, g, "alice", "alice-secret-pw", "4155550111", repMedia,
		sip.NewHeader("P-Asserted-Identity", "<sip:+12125550199@127.0.0.1>"))
	if err != nil {
		t.Fatalf("call failed: %v", err)
	}
	inv := tr.lastInvite(t)
	// Nothing of the rep's leg reaches the trunk: own Call-ID, caller ID
	// replaced by one alice may present, callee normalised.
	if inv.CallID().Value() == d.InviteRequest.CallID().Value() {
		t.Fatal("leg b reused leg a's Call-ID: that is a proxy, not a B2BUA")
	}
	if u := inv.From().Address.User; u != "+14155550100" {
		t.Fatalf("From user on the trunk leg = %q, want alice's own number", u)
	}
	if pai := inv.GetHeader("P-Asserted-Identity"); pai == nil || pai.Value() != "<sip:+14155550100@127.0.0.1>" {
		t.Fatalf("P-Asserted-Identity = %v", pai)
	}
	if inv.Recipient.User != "+14155550111" {
		t.Fatalf("trunk Request-URI user %q, want +14155550111", inv.Recipient.User)
	}
	legA := mediaAddr(t, d.InviteResponse.Body())
	legB := mediaAddr(t, inv.Body())
	if ev := waitConsent(t, g, "acme"); ev.Result != store.ConsentPlayed || ev.Party != store.PartyCallee {
		t.Fatalf("consent event %+v", ev)
	}
	if !inRange(legA, 31100, 31199) || !inRange(legB, 31100, 31199) || legA == legB {
		t.Fatalf("SDP not anchored on the gateway: rep sees %s, trunk sees %s", legA, legB)
	}
	repMedia.send(t, legA, 50, 0x11)
	srcs := tr.rtp.waitPackets(t, 0x11, 45)
	tr.rtp.send(t, legB, 50, 0x22)
	srcs2 := repMedia.waitPackets(t, 0x22, 45)
	for src := range srcs {
		if src != legB {
			t.Fatalf("trunk got RTP from %s, want the gateway's leg b port %s", src, legB)
		}
	}
	for src := range srcs2 {
		if src != legA {
			t.Fatalf("rep got RTP from %s, want the gateway's leg a port %s", src, legA)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tr.byes:
	case <-time.After(5 * time.Second):
		t.Fatal("trunk got no BYE")
	}
	c := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
	if c.EndReason != "bye" || c.HangupBy != "caller" || c.AnswerAt.IsZero() || c.ACode != 200 || c.BCode != 200 ||
		c.Caller != "+14155550100" || c.Callee != "+14155550111" || c.BCallID != inv.CallID().Value() || c.Direction != store.Outbound {
		t.Fatalf("call record %+v", c)
	}
	waitPortsFree(t, g)
}

// waitConsent waits for the consent event of the tenant's newest call.
func waitConsent(t *testing.T, g *gateway, tenant string) store.ConsentEvent {
	t.Helper()
	p, _ := g.db.AdminScope(context.Background(), tenant)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cs := calls(t, g, tenant); len(cs) > 0 {
			evs, err := g.db.In(p).ConsentEvents(context.Background(), cs[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) > 0 {
				return evs[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no consent event")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitPortsFree(t *testing.T, g *gateway) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for g.media.PortsInUse() != 0 || g.srv.ActiveCalls() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("leak: %d RTP ports, %d calls still held", g.media.PortsInUse(), g.srv.ActiveCalls())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOutboundByeFromCallee(t *testing.T) {
	g, tr, p := startOutbound(t, gatewayOptions{rtpPorts: [2]int{31200, 31299}})
	byes := p.acceptByes()
	if _, err := p.dial(t, g, "alice", "alice-secret-pw", "+14155550111", newRTPPeer(t, "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	d := <-tr.sessions
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("callee BYE: %v", err)
	}
	select {
	case <-byes:
	case <-time.After(5 * time.Second):
		t.Fatal("the rep got no BYE after the callee hung up")
	}
	c := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
	if c.HangupBy != "callee" || c.EndReason != "bye" {
		t.Fatalf("record %+v", c)
	}
	waitPortsFree(t, g)
}

func TestOutboundCancelBeforeAnswer(t *testing.T) {
	g := startGateway(t, gatewayOptions{rtpPorts: [2]int{31300, 31399}})
	tr := newTrunk(t, "127.0.0.2")
	cancelled := make(chan struct{})
	tr.answer = func(d *sipgo.DialogServerSession, req *sip.Request) {
		_ = d.Respond(180, "Ringing", nil)
		<-d.Context().Done() // rings until the gateway cancels
		close(cancelled)
	}
	g.provisionOutbound(t, tr)
	p := newPhone(t)
	ctx, cancel := context.WithCancel(context.Background())
	dua := &sipgo.DialogUA{Client: p.cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: 5999}}}
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "4155550111", Host: "127.0.0.1", Port: int(g.udp.Port())})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(newRTPPeer(t, "127.0.0.1").sdp())
	d, err := dua.WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- d.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "alice-secret-pw", OnResponse: func(r *sip.Response) error {
			if r.StatusCode == 180 {
				cancel() // the rep gives up while the callee rings
			}
			return nil
		}})
	}()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitAnswer after CANCEL: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the trunk leg was not cancelled")
	}
	c := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
	if c.EndReason != "cancel" || c.HangupBy != "caller" || !c.AnswerAt.IsZero() || c.RingingAt.IsZero() {
		t.Fatalf("record %+v", c)
	}
	waitPortsFree(t, g)
}

func TestOutboundTrunkUnreachable(t *testing.T) {
	g := startGateway(t, gatewayOptions{rtpPorts: [2]int{31400, 31499}})
	tr := newTrunk(t, "127.0.0.2")
	// The carrier is gone: its address is a port nothing listens on.
	dead, _ := net.ListenPacket("udp", "127.0.0.2:0")
	tr.addr = dead.LocalAddr().(*net.UDPAddr).AddrPort()
	dead.Close()
	g.provisionOutbound(t, tr)
	p := newPhone(t)
	start := time.Now()
	_, err := p.dial(t, g, "alice", "alice-secret-pw", "4155550111", newRTPPeer(t, "127.0.0.1"))
	var dr *sipgo.ErrDialogResponse
	if !errors.As(err, &dr) || dr.Res.StatusCode != 503 {
		t.Fatalf("want 503, got %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("503 took %s; trunk_timeout is 2s", took)
	}
	c := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
	if c.EndReason != "trunk_unreachable" || c.ACode != 503 {
		t.Fatalf("record %+v", c)
	}
	waitPortsFree(t, g)
}

func TestOutboundRTPTimeout(t *testing.T) {
	g, tr, p := startOutbound(t, gatewayOptions{rtpPorts: [2]int{31500, 31599}})
	p.acceptByes()
	if _, err := p.dial(t, g, "alice", "alice-secret-pw", "4155550111", newRTPPeer(t, "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	// Nobody sends media; the gateway's rtp_timeout is 3 s.
	select {
	case <-tr.byes:
	case <-time.After(10 * time.Second):
		t.Fatal("no BYE to the trunk after the RTP timeout")
	}
	c := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
	if c.EndReason != "rtp_timeout" || c.HangupBy != "system" {
		t.Fatalf("record %+v", c)
	}
	waitPortsFree(t, g)
}

// A rep puts the call on hold and resumes it: each re-INVITE is
// renegotiated through the media session and sent to the trunk as
// Blackbox's own request; the direction passes through both ways.
func TestHoldAndResume(t *testing.T) {
	g := startGateway(t, gatewayOptions{rtpPorts: [2]int{32800, 32899}})
	tr := newTrunk(t, "127.0.0.2")
	reinvites := make(chan *sip.Request, 4)
	g.provisionOutbound(t, tr)
	p := newPhone(t)
	rep := newRTPPeer(t, "127.0.0.1")
	d, err := p.dial(t, g, "alice", "alice-secret-pw", "4155550111", rep)
	if err != nil {
		t.Fatal(err)
	}
	trunkSide := <-tr.sessions
	waitConsent(t, g, "acme") // until then an offer meets 491: the answer is still settling
	onReinvite := func(req *sip.Request, tx sip.ServerTransaction) {
		reinvites <- req
		body := strings.Replace(string(tr.rtp.sdp()), "a=sendrecv", "a=recvonly", 1)
		if !strings.Contains(string(req.Body()), "a=sendonly") {
			body = string(tr.rtp.sdp())
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", []byte(body))
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.AppendHeader(sip.HeaderClone(trunkSide.InviteResponse.Contact()))
		_ = tx.Respond(res)
	}
	tr.reinvite.Store(&onReinvite)
	for _, dir := range []string{"sendonly", "sendrecv"} {
		offer := strings.Replace(string(rep.sdp()), "a=sendrecv", "a="+dir, 1)
		req := sip.NewRequest(sip.INVITE, d.InviteResponse.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody([]byte(offer))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := d.Do(ctx, req)
		cancel()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("re-INVITE (%s): %v %v", dir, res, err)
		}
		ack := sip.NewRequest(sip.ACK, d.InviteResponse.Contact().Address)
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.ACK})
		if err := d.WriteRequest(ack); err != nil {
			t.Fatal(err)
		}
		var got *sip.Request
		select {
		case got = <-reinvites:
		case <-time.After(5 * time.Second):
			t.Fatalf("the trunk got no re-INVITE for %s", dir)
		}
		if !strings.Contains(string(got.Body()), "a="+dir) {
			t.Fatalf("the trunk's re-INVITE lost the %s direction:\n%s", dir, got.Body())
		}
		want := map[string]string{"sendonly": "a=recvonly", "sendrecv": "a=sendrecv"}[dir]
		if !strings.Contains(string(res.Body()), want) {
			t.Fatalf("the rep's 200 to %s should say %s:\n%s", dir, want, res.Body())
		}
		if mediaAddr(t, res.Body()) != mediaAddr(t, d.InviteResponse.Body()) {
			t.Fatal("the rep's leg moved to another port on renegotiation")
		}
	}
	// Resumed: audio flows again both ways.
	legA := mediaAddr(t, d.InviteResponse.Body())
	rep.send(t, legA, 20, 0x66)
	tr.rtp.waitPackets(t, 0x66, 15)
}

// An authenticated INVITE whose SDP cannot be read gets 488, and nothing
// is left behind.
func TestMalformedSDP(t *testing.T) {
	g, tr, p := startOutbound(t, gatewayOptions{rtpPorts: [2]int{32900, 32999}})
	dua := &sipgo.DialogUA{Client: p.cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: 5999}}}
	for _, body := range []string{"v=0\r\nthis is not sdp\r\n", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n"} {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "4155550111", Host: "127.0.0.1", Port: int(g.udp.Port())})
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody([]byte(body))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d, err := dua.WriteInvite(ctx, req)
		if err == nil {
			err = d.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "alice-secret-pw"})
		}
		cancel()
		var dr *sipgo.ErrDialogResponse
		if !errors.As(err, &dr) || dr.Res.StatusCode != 488 {
			t.Fatalf("SDP %q: want 488, got %v", body, err)
		}
	}
	tr.mu.Lock()
	n := len(tr.invites)
	tr.mu.Unlock()
	if n != 0 {
		t.Fatal("an unusable offer reached the trunk")
	}
	waitPortsFree(t, g)
}
