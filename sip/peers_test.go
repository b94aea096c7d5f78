package sip_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/blackbox-gw/blackbox/store"
)

// rtpPeer is one party's media socket: it sends G.711 frames and records the
// source of every packet it receives.
type rtpPeer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []received
}

type received struct {
	from    netip.AddrPort
	payload []byte
}

func newRTPPeer(t *testing.T, ip string) *rtpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	p := &rtpPeer{conn: c}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(buf[:n]) != nil {
				continue
			}
			p.mu.Lock()
			p.got = append(p.got, received{from: from, payload: append([]byte(nil), pkt.Payload...)})
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return p
}

func (p *rtpPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// sdp is a minimal PCMU offer/answer for this peer.
func (p *rtpPeer) sdp() []byte {
	ip := p.conn.LocalAddr().(*net.UDPAddr).IP.String()
	return []byte(fmt.Sprintf("v=0\r\no=peer 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0 101\r\n"+
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n", ip, ip, p.port()))
}

// send writes n 20 ms PCMU packets whose payload bytes all equal marker.
func (p *rtpPeer) send(t *testing.T, to netip.AddrPort, n int, marker byte) {
	t.Helper()
	ssrc := uint32(marker) << 16
	for i := 0; i < n; i++ {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: ssrc},
			Payload: bytesOf(marker, 160)}
		b, _ := pkt.Marshal()
		if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// packets returns what arrived carrying marker, and their sources.
func (p *rtpPeer) packets(marker byte) (int, map[netip.AddrPort]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, src := 0, map[netip.AddrPort]bool{}
	for _, r := range p.got {
		if len(r.payload) == 160 && r.payload[0] == marker && r.payload[159] == marker {
			n++
			src[r.from] = true
		}
	}
	return n, src
}

// waitPackets waits until at least want packets with marker arrived.
func (p *rtpPeer) waitPackets(t *testing.T, marker byte, want int) map[netip.AddrPort]bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, src := p.packets(marker)
		if n >= want {
			return src
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d packets with marker %d, want %d", n, marker, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mediaAddr reads the c= address and m= port of an SDP body.
func mediaAddr(t *testing.T, body []byte) netip.AddrPort {
	t.Helper()
	var ip string
	var port int
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "c=IN IP4 ") {
			ip = strings.TrimPrefix(line, "c=IN IP4 ")
		}
		if strings.HasPrefix(line, "m=audio ") {
			fmt.Sscanf(line, "m=audio %d", &port)
		}
	}
	ap, err := netip.ParseAddrPort(fmt.Sprintf("%s:%d", ip, port))
	if err != nil {
		t.Fatalf("no media address in SDP:\n%s", body)
	}
	return ap
}

// trunk is a sipgo UAS standing in for a carrier.
type trunk struct {
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	dua     *sipgo.DialogUA
	addr    netip.AddrPort
	rtp     *rtpPeer
	mu      sync.Mutex
	invites []*sip.Request
	// behaviour
	answer   func(d *sipgo.DialogServerSession, req *sip.Request)
	reinvite atomic.Pointer[func(req *sip.Request, tx sip.ServerTransaction)] // in-dialog INVITEs
	sessions chan *sipgo.DialogServerSession
	byes     chan *sip.Request
}

func newTrunk(t *testing.T, ip string) *trunk {
	t.Helper()
	ua, _ := sipgo.NewUA(sipgo.WithUserAgent("test-carrier"))
	srv, _ := sipgo.NewServer(ua)
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname(ip))
	tr := &trunk{ua: ua, srv: srv, cli: cli, rtp: newRTPPeer(t, ip), sessions: make(chan *sipgo.DialogServerSession, 8), byes: make(chan *sip.Request, 8)}
	conn, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	tr.addr = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	tr.dua = &sipgo.DialogUA{Client: cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: ip, Port: int(tr.addr.Port())}}, RewriteContact: true}
	var dialogs sync.Map
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		if _, inDialog := req.To().Params.Get("tag"); inDialog {
			if h := tr.reinvite.Load(); h != nil {
				(*h)(req, tx)
			}
			return
		}
		tr.mu.Lock()
		tr.invites = append(tr.invites, req)
		tr.mu.Unlock()
		d, err := tr.dua.ReadInvite(req, tx)
		if err != nil {
			return
		}
		dialogs.Store(d.ID, d)
		tr.sessions <- d
		if tr.answer != nil {
			tr.answer(d, req)
		} else {
			_ = d.Respond(180, "Ringing", nil)
			_ = d.RespondSDP(tr.rtp.sdp())
		}
		<-d.Context().Done()
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		id, _ := sip.DialogIDFromRequestUAS(req)
		if d, ok := dialogs.Load(id); ok {
			_ = d.(*sipgo.DialogServerSession).ReadAck(req, tx)
		}
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		id, _ := sip.DialogIDFromRequestUAS(req)
		if d, ok := dialogs.Load(id); ok {
			_ = d.(*sipgo.DialogServerSession).ReadBye(req, tx)
		} else {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No dialog", nil))
		}
		tr.byes <- req
	})
	go srv.ServeUDP(conn)
	t.Cleanup(func() { conn.Close(); ua.Close() })
	waitUDP(t, ua, conn.LocalAddr().String())
	return tr
}

func (tr *trunk) lastInvite(t *testing.T) *sip.Request {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.invites) == 0 {
		t.Fatal("the trunk received no INVITE")
	}
	return tr.invites[len(tr.invites)-1]
}

// provisionOutbound sets up tenant acme with rep alice (DID +14155550100)
// and a trunk pointing at tr.
func (g *gateway) provisionOutbound(t *testing.T, tr *trunk) store.User {
	t.Helper()
	u := g.provision(t, "acme", "alice", "alice-secret-pw")
	ctx := context.Background()
	p, _ := g.db.AdminScope(ctx, "acme")
	sc := g.db.In(p)
	if _, err := sc.AddNumber(ctx, "+14155550100", "alice"); err != nil {
		t.Fatal(err)
	}
	cidrs, _ := store.ParseCIDRs(tr.addr.Addr().String())
	if _, err := sc.CreateTrunk(ctx, store.NewTrunk{Name: "carrier", Address: tr.addr.String(), InboundFrom: cidrs}); err != nil {
		t.Fatal(err)
	}
	return u
}

// startOutbound is the common outbound setup: a gateway, its tenant acme
// with rep alice, a carrier trunk on 127.0.0.2, and alice's phone.
func startOutbound(t *testing.T, o gatewayOptions) (*gateway, *trunk, *phone) {
	t.Helper()
	g := startGateway(t, o)
	tr := newTrunk(t, "127.0.0.2")
	g.provisionOutbound(t, tr)
	return g, tr, newPhone(t)
}

// dial places a call from a rep phone through the gateway.
func (p *phone) dial(t *testing.T, g *gateway, user, password, number string, media *rtpPeer, extra ...sip.Header) (*sipgo.DialogClientSession, error) {
	t.Helper()
	dua := &sipgo.DialogUA{Client: p.cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: 5999}}}
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: number, Host: g.udp.Addr().String(), Port: int(g.udp.Port())})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetBody(media.sdp())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{Username: user, Password: password}); err != nil {
		return d, err
	}
	return d, d.Ack(ctx)
}
