package e2e

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// Fixtures for the tests that run the real `blackbox serve` (issues 2 and 3).

// The numbers and names every gateway test provisions.
const (
	fxTenant      = "acme"
	fxRep         = "alice"
	fxRepPass     = "alice-sip-secret"
	fxRepCallerID = "+12125550101" // alice's caller ID and DID
	fxCallee      = "+12125550200" // a number on the carrier's side
	fxSpoofed     = "+12125550999" // uas-answer-check-cid.xml fails the call on it
	fxExternal    = "+13125557654" // an outside caller on inbound calls
)

// carrierIP is the carrier's loopback address: the gateway tells a trunk
// from a rep by source address, so the two must not share 127.0.0.1.
const carrierIP = "127.0.0.2"

// callFixture is a gateway with one tenant, one rep (alice, whose DID is
// also her caller ID, on 127.0.0.1) and one UDP trunk on 127.0.0.2, which
// may also send inbound calls.
type callFixture struct {
	gw        *Gateway
	trunkAddr string // where Blackbox sends outbound INVITEs
	trunkPort int
}

// newCallFixture provisions with the CLI before `serve` starts, then
// starts it. The trunk's port is reserved; start the carrier's SIPp on
// fx.trunkPort (or leave it closed for an unreachable trunk).
func newCallFixture(t *testing.T, opts GatewayOptions, trunkMods ...func(*TrunkSpec)) *callFixture {
	t.Helper()
	requireTool(t, "sipp")
	gw := newGateway(t, opts)
	fx := &callFixture{gw: gw, trunkPort: freePort(t)}
	fx.trunkAddr = carrierIP + ":" + strconv.Itoa(fx.trunkPort)
	gw.AddTenant(t, fxTenant, "--default-country", "US")
	gw.AddUser(t, fxTenant, fxRep, fxRepPass, "rep", "--caller-id", fxRepCallerID)
	gw.AddNumber(t, fxTenant, fxRepCallerID, fxRep)
	trunk := TrunkSpec{Tenant: fxTenant, Name: "carrier", Address: fx.trunkAddr, Transport: "udp", InboundFrom: []string{carrierIP + "/32"}}
	for _, mod := range trunkMods {
		mod(&trunk)
	}
	gw.AddTrunk(t, trunk)
	gw.Start(t)
	return fx
}

// rep returns SIPp options for alice calling through the gateway.
func (fx *callFixture) rep(o SIPpOptions) SIPpOptions {
	o.Remote = fx.gw.SIPAddr
	if o.Service == "" {
		o.Service = fxCallee
	}
	if o.AuthUser == "" {
		o.AuthUser, o.AuthPass = fxRep, fxRepPass
	}
	return o
}

// carrier returns SIPp options for the trunk's UAS on its reserved port.
func (fx *callFixture) carrier(o SIPpOptions) SIPpOptions {
	o.LocalIP, o.LocalPort = carrierIP, fx.trunkPort
	return o
}

// carrierPeer is a Go RTP peer on the carrier's address.
func (fx *callFixture) carrierPeer(t *testing.T) *rtpPeer {
	return newRTPPeerAt(t, netip.MustParseAddr(carrierIP))
}

// trunkCaller returns SIPp options for the trunk calling alice's DID.
func (fx *callFixture) trunkCaller(o SIPpOptions) SIPpOptions {
	o.Remote, o.LocalIP = fx.gw.SIPAddr, carrierIP
	if o.Service == "" {
		o.Service = fxRepCallerID
	}
	if o.Keys == nil {
		o.Keys = map[string]string{}
	}
	if o.Keys["caller"] == "" {
		o.Keys["caller"] = fxExternal
	}
	return o
}

// pair runs a carrier scenario and, against the gateway, a rep scenario;
// both must succeed.
func (fx *callFixture) pair(t *testing.T, trunkScenario string, trunkOpts SIPpOptions, repScenario string, repOpts SIPpOptions) (trunk, rep *SIPp) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	trunk = startSIPp(t, ctx, trunkScenario, fx.carrier(trunkOpts))
	rep = runSIPp(t, ctx, repScenario, fx.rep(repOpts))
	rep.RequireSuccess(t)
	trunk.RequireSuccess(t)
	return trunk, rep
}

// sdpOf waits for the first message s exchanged that matches and carries
// SDP, and returns its media address: what the gateway offered or answered.
func sdpOf(t *testing.T, ctx context.Context, s *SIPp, match func(sipMessage) bool) netip.AddrPort {
	t.Helper()
	m, err := s.WaitForMessage(ctx, func(m sipMessage) bool {
		_, _, ok := m.sdpMedia()
		return match(m) && ok
	})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := m.sdpMedia()
	addr, err := netip.ParseAddr(host)
	if err != nil {
		t.Fatalf("SDP c= %q: %v", host, err)
	}
	return netip.AddrPortFrom(addr, uint16(port))
}

// receivedInvite matches the INVITE a UAS got; answered matches the 200 OK
// to INVITE a UAC got.
func receivedInvite(m sipMessage) bool { return !m.Sent && m.IsRequest("INVITE") }
func answered(m sipMessage) bool       { return !m.Sent && m.IsResponse(200, "INVITE") }

// assertGatewayMedia checks that addr, from the gateway's SDP, is its own:
// the external host and a port of its media range.
func assertGatewayMedia(t *testing.T, gw *Gateway, addr netip.AddrPort) {
	t.Helper()
	if addr.Addr().String() != gw.Config.SIP.ExternalHost {
		t.Errorf("gateway SDP address %s, want its external host %s", addr.Addr(), gw.Config.SIP.ExternalHost)
	}
	if p := int(addr.Port()); p < gw.RTPMin || p > gw.RTPMax {
		t.Errorf("gateway SDP port %d outside media.rtp_ports %d-%d", p, gw.RTPMin, gw.RTPMax)
	}
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
