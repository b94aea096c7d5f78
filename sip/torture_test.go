package sip_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// tortureDir finds the RFC 4475 messages shipped inside sipgo's module.
func tortureDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/emiago/sipgo").Output()
	if err != nil {
		t.Fatalf("locate sipgo module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "sip", "testdata", "torture")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("RFC 4475 torture messages not found: %v", err)
	}
	return dir
}

// TestTortureMessages sends every RFC 4475 torture message, over UDP and
// TCP, to a running gateway; each is answered or dropped, nothing panics,
// and afterwards a normal registration and call still complete.
func TestTortureMessages(t *testing.T) {
	g := startGateway(t, gatewayOptions{rtpPorts: [2]int{31800, 31899}})
	files, _ := filepath.Glob(filepath.Join(tortureDir(t), "*", "*.dat"))
	if len(files) < 45 {
		t.Fatalf("found only %d torture messages", len(files))
	}
	udp, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(g.udp))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, f := range files {
		msg, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := udp.Write(msg); err != nil {
			t.Fatalf("%s over udp: %v", filepath.Base(f), err)
		}
		tcp, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(g.tcp))
		if err != nil {
			t.Fatalf("%s: gateway stopped accepting TCP: %v", filepath.Base(f), err)
		}
		tcp.Write(msg)
		tcp.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 4096)
		n, _ := tcp.Read(buf)
		if n > 0 && !strings.HasPrefix(string(buf[:n]), "SIP/2.0 ") {
			// Every answer speaks SIP/2.0, even to SIP/7.0 (505).
			t.Fatalf("%s: answered with garbage %q", filepath.Base(f), buf[:n])
		}
		tcp.Close()
	}
	time.Sleep(200 * time.Millisecond)
	if g.srv.ActiveCalls() != 0 || g.media.PortsInUse() != 0 {
		t.Fatalf("torture left %d calls and %d RTP ports behind", g.srv.ActiveCalls(), g.media.PortsInUse())
	}

	// Business as usual afterwards.
	tr := newTrunk(t, "127.0.0.2")
	g.provisionOutbound(t, tr)
	p := newPhone(t)
	if res := p.register(t, g, "alice", "alice-secret-pw", []string{"<sip:alice@127.0.0.1:5999>"}, 300); res.StatusCode != 200 {
		t.Fatalf("register after torture: %s", res.StartLine())
	}
	d, err := p.dial(t, g, "alice", "alice-secret-pw", "4155550111", newRTPPeer(t, "127.0.0.1"))
	if err != nil {
		t.Fatalf("call after torture: %v", err)
	}
	if d.InviteResponse.StatusCode != 200 {
		t.Fatalf("call after torture: %s", d.InviteResponse.StartLine())
	}
}

// TestScreening covers what is refused before any lookup.
func TestScreening(t *testing.T) {
	g := startGateway(t, gatewayOptions{rtpPorts: [2]int{31900, 31999}})
	p := newPhone(t)
	send := func(req *sip.Request) *sip.Response {
		t.Helper()
		ctx, cancel := contextWithTimeout(5 * time.Second)
		defer cancel()
		res, err := p.cli.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	invite := func(hs ...sip.Header) *sip.Request {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "4155550111", Host: "127.0.0.1", Port: int(g.udp.Port())})
		req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 5999}})
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		for _, h := range hs {
			req.AppendHeader(h)
		}
		req.SetBody(newRTPPeer(t, "127.0.0.1").sdp())
		return req
	}
	// Blackbox supports no option tags (no 100rel/PRACK): refused, never
	// half-supported.
	if res := send(invite(sip.NewHeader("Require", "100rel"))); res.StatusCode != 420 || res.GetHeader("Unsupported") == nil {
		t.Fatalf("Require: 100rel: %s", res.StartLine())
	}
	mf := sip.MaxForwardsHeader(0)
	if res := send(invite(&mf)); res.StatusCode != 483 {
		t.Fatalf("Max-Forwards 0: %s", res.StartLine())
	}
	opts := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(g.udp.Port())})
	if res := send(opts); res.StatusCode != 200 || res.GetHeader("Allow") == nil {
		t.Fatalf("OPTIONS: %s", res.StartLine())
	}
	sub := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(g.udp.Port())})
	if res := send(sub); res.StatusCode != 405 || res.GetHeader("Allow") == nil {
		t.Fatalf("SUBSCRIBE: %s", res.StartLine())
	}
	bye := sip.NewRequest(sip.BYE, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(g.udp.Port())})
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1"}, Params: sip.NewParams()}
	to.Params.Add("tag", "nosuchdialog")
	bye.AppendHeader(to)
	if res := send(bye); res.StatusCode != 481 {
		t.Fatalf("BYE outside any dialog: %s", res.StartLine())
	}
	bad := invite()
	bad.SetBody([]byte("v=0\r\nthis is not sdp\r\n"))
	res := send(bad)
	if res.StatusCode != 407 {
		t.Fatalf("unauthenticated INVITE: %s", res.StartLine())
	}
}
