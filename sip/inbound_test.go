package sip_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/blackbox-gw/blackbox/store"
)

// deskPhone is a registered rep phone that answers (or rings) inbound calls.
type deskPhone struct {
	*phone
	addr      netip.AddrPort
	rtp       *rtpPeer
	answer    bool
	answered  chan *sipgo.DialogServerSession
	cancelled atomic.Bool
	invites   atomic.Int32
}

func newDeskPhone(t *testing.T, g *gateway, user, password string, answer bool) *deskPhone {
	t.Helper()
	p := newPhone(t)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.srv.ServeUDP(conn)
	t.Cleanup(func() { conn.Close() })
	waitUDP(t, p.ua, conn.LocalAddr().String())
	dp := &deskPhone{phone: p, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), rtp: newRTPPeer(t, "127.0.0.1"),
		answer: answer, answered: make(chan *sipgo.DialogServerSession, 1)}
	dua := &sipgo.DialogUA{Client: p.cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: int(dp.addr.Port())}}}
	var dialogs sync.Map
	p.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		dp.invites.Add(1)
		d, err := dua.ReadInvite(req, tx)
		if err != nil {
			return
		}
		dialogs.Store(d.ID, d)
		_ = d.Respond(180, "Ringing", nil)
		if !dp.answer {
			<-d.Context().Done()
			dp.cancelled.Store(true)
			return
		}
		time.Sleep(100 * time.Millisecond)
		if err := d.RespondSDP(dp.rtp.sdp()); err == nil {
			dp.answered <- d
		}
	})
	p.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		id, _ := sip.DialogIDFromRequestUAS(req)
		if d, ok := dialogs.Load(id); ok {
			_ = d.(*sipgo.DialogServerSession).ReadAck(req, tx)
		}
	})
	p.acceptByes()
	// Register from the listening socket, as a phone does.
	req := registerRequest(g, user, []string{fmt.Sprintf("<sip:%s@%s>", user, dp.addr)}, 300)
	req.Laddr = sip.Addr{IP: net.IP(dp.addr.Addr().AsSlice()), Port: int(dp.addr.Port())}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: password})
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("register %s: %v %v", user, res, err)
	}
	return dp
}

// waitUDP waits until ua's transport holds the listener at addr, so requests
// can be sent from it.
func waitUDP(t *testing.T, ua *sipgo.UserAgent, addr string) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if _, err := ua.TransportLayer().GetConnection("udp", addr); err == nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("listener %s never registered", addr)
}

// call sends an inbound INVITE from the trunk to a DID.
func (tr *trunk) call(t *testing.T, g *gateway, did string) (*sipgo.DialogClientSession, error) {
	t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: did, Host: "127.0.0.1", Port: int(g.udp.Port())})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "+12125550123", Host: tr.addr.Addr().String()}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(tr.rtp.sdp())
	req.Laddr = sip.Addr{IP: net.IP(tr.addr.Addr().AsSlice()), Port: int(tr.addr.Port())}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := tr.dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		return d, err
	}
	return d, d.Ack(ctx)
}

func TestInboundForksToEveryContact(t *testing.T) {
	g := startGateway(t, gatewayOptions{rtpPorts: [2]int{31600, 31699}})
	tr := newTrunk(t, "127.0.0.2")
	g.provisionOutbound(t, tr)
	ringer := newDeskPhone(t, g, "alice", "alice-secret-pw", false)
	answerer := newDeskPhone(t, g, "alice", "alice-secret-pw", true)

	d, err := tr.call(t, g, "+14155550100")
	if err != nil {
		t.Fatalf("inbound call: %v", err)
	}
	// Blackbox answers the caller, plays the announcement, then rings.
	if ev := waitConsent(t, g, "acme"); ev.Result != store.ConsentPlayed || ev.Party != store.PartyCaller {
		t.Fatalf("consent %+v", ev)
	}
	var phoneSide *sipgo.DialogServerSession
	select {
	case phoneSide = <-answerer.answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the rep's phone never answered")
	}
	if ringer.invites.Load() != 1 || answerer.invites.Load() != 1 {
		t.Fatalf("fork: ringer got %d INVITEs, answerer %d", ringer.invites.Load(), answerer.invites.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for !ringer.cancelled.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the contact that did not answer was not cancelled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	legToTrunk := mediaAddr(t, d.InviteResponse.Body())
	legToPhone := mediaAddr(t, phoneSide.InviteRequest.Body())
	tr.rtp.send(t, legToTrunk, 30, 0x33)
	answerer.rtp.waitPackets(t, 0x33, 25)
	answerer.rtp.send(t, legToPhone, 30, 0x44)
	tr.rtp.waitPackets(t, 0x44, 25)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	c := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
	if c.Direction != store.Inbound || c.Caller != "+12125550123" || c.Callee != "+14155550100" || c.HangupBy != "caller" || c.TrunkID == "" {
		t.Fatalf("record %+v", c)
	}
	waitPortsFree(t, g)
}

func TestInboundRefusals(t *testing.T) {
	g := startGateway(t, gatewayOptions{rtpPorts: [2]int{31700, 31799}})
	tr := newTrunk(t, "127.0.0.2")
	g.provisionOutbound(t, tr)
	code := func(err error) int {
		var dr *sipgo.ErrDialogResponse
		if errors.As(err, &dr) {
			return dr.Res.StatusCode
		}
		t.Fatalf("want a SIP error response, got %v", err)
		return 0
	}
	if _, err := tr.call(t, g, "+14155550100"); code(err) != 480 {
		t.Fatalf("DID of a user with no registration: %v", err)
	}
	if _, err := tr.call(t, g, "+14155550999"); code(err) != 404 {
		t.Fatalf("unknown DID: %v", err)
	}
	stranger := newTrunk(t, "127.0.0.3")
	if _, err := stranger.call(t, g, "+14155550100"); code(err) != 403 {
		t.Fatalf("source matching no trunk: %v", err)
	}
	c := waitCall(t, g, "acme", func(c store.Call) bool { return !c.EndAt.IsZero() })
	if c.EndReason != "no_registration" || c.ACode != 480 {
		t.Fatalf("the 480 call leaves its record: %+v", c)
	}
}

// A phone that registered over TCP (from an ephemeral port, as behind NAT)
// is reached for inbound calls over that same TCP connection.
func TestInboundOverTheRegisteredTCPConnection(t *testing.T) {
	g, tr, p := startOutbound(t, gatewayOptions{rtpPorts: [2]int{32700, 32799}})
	media := newRTPPeer(t, "127.0.0.1")
	var dialogs sync.Map
	dua := &sipgo.DialogUA{Client: p.cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "10.9.9.9", Port: 5060,
		UriParams: sip.HeaderParams{{K: "transport", V: "tcp"}}}}}
	answered := make(chan netip.AddrPort, 1)
	p.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		d, err := dua.ReadInvite(req, tx)
		if err != nil {
			return
		}
		dialogs.Store(d.ID, d)
		src, _ := netip.ParseAddrPort(req.Source())
		if err := d.RespondSDP(media.sdp()); err == nil {
			answered <- src
		}
	})
	p.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		id, _ := sip.DialogIDFromRequestUAS(req)
		if d, ok := dialogs.Load(id); ok {
			_ = d.(*sipgo.DialogServerSession).ReadAck(req, tx)
		}
	})
	p.acceptByes()

	// The Contact names an address nobody can reach (a private one behind
	// NAT); only the TCP connection the REGISTER came over leads back.
	req := registerRequest(g, "alice", []string{"<sip:alice@10.9.9.9:5060;transport=tcp>"}, 300)
	req.Recipient.Port = int(g.tcp.Port())
	req.SetTransport("TCP")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "alice", Password: "alice-secret-pw"})
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("register over TCP: %v %v", res, err)
	}
	if _, err := tr.call(t, g, "+14155550100"); err != nil {
		t.Fatalf("inbound call: %v", err)
	}
	select {
	case src := <-answered:
		if src != g.tcp {
			t.Fatalf("the INVITE reached the phone from %s, want over its connection to the gateway's %s", src, g.tcp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the phone registered over TCP never got the inbound call")
	}
	c := waitCall(t, g, "acme", func(c store.Call) bool { return !c.AnswerAt.IsZero() })
	if c.Direction != store.Inbound {
		t.Fatalf("record %+v", c)
	}
}
