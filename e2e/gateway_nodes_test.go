package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/store/pgtest"
)

// TestTwoNodesOnePostgres is the store issue's two-node test: two `blackbox
// serve` processes on one Postgres and one object store. A rep registered
// on node 1 receives an inbound call that the trunk sends to node 2, and a
// per-user rate limit holds across both nodes together.
func TestTwoNodesOnePostgres(t *testing.T) {
	requireTool(t, "sipp")
	db := pgtest.New(t)
	key := newFernetKey(t)
	objectsDir := workDir(t)
	policyFile := writePolicy(t, "version: \"1\"\ndefaults:\n  rate_limits:\n    user:\n      calls_per_minute: 2\n")
	node := func(name string) *Gateway {
		return newGateway(t, GatewayOptions{
			Env: []string{"BLACKBOX_FERNET_KEYS=" + key},
			Configure: func(c *config.Config) {
				c.Node = name
				c.Store.DSN = db.DSN
				c.Objects.URL = "file:" + objectsDir
				c.Policy.File = policyFile
			},
		})
	}
	n1, n2 := node("node-1"), node("node-2")

	// One provisioning, through node 1's CLI: both nodes read the same store.
	trunkPort := freePort(t)
	n1.AddTenant(t, fxTenant, "--default-country", "US")
	n1.AddUser(t, fxTenant, fxRep, fxRepPass, "rep", "--caller-id", fxRepCallerID)
	n1.AddNumber(t, fxTenant, fxRepCallerID, fxRep)
	n1.AddTrunk(t, TrunkSpec{Tenant: fxTenant, Name: "carrier", Address: carrierIP + ":" + strconv.Itoa(trunkPort), Transport: "udp",
		InboundFrom: []string{carrierIP + "/32"}})
	n1.Start(t)
	n2.Start(t)
	fx1 := &callFixture{gw: n1, trunkPort: trunkPort, trunkAddr: carrierIP + ":" + strconv.Itoa(trunkPort)}
	fx2 := &callFixture{gw: n2, trunkPort: trunkPort, trunkAddr: fx1.trunkAddr}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Inbound: the phone registers with node 1; the carrier calls node 2.
	phonePeer, carrierPeer := newRTPPeer(t), fx2.carrierPeer(t)
	phone := startSIPp(t, ctx, "register-then-wait", SIPpOptions{
		Remote: n1.SIPAddr, Service: fxRep, AuthUser: fxRep, AuthPass: fxRepPass,
		OOCScenario: "uas-answer", Keys: rtpKeys(phonePeer),
	})
	if _, err := phone.WaitForMessage(ctx, func(m sipMessage) bool { return !m.Sent && m.IsResponse(200, "REGISTER") }); err != nil {
		t.Fatal(err)
	}
	trunk := startSIPp(t, ctx, "uac-call", fx2.trunkCaller(SIPpOptions{Pause: 3 * time.Second, Keys: rtpKeys(carrierPeer)}))
	toPhone := sdpOf(t, ctx, phone, receivedInvite)
	assertGatewayMedia(t, n2, toPhone) // node 2 anchors the call it took
	trunk.RequireSuccess(t)
	phone.RequireSuccess(t)
	inv := messagesOf(phone.Messages(t), false, "INVITE")
	if len(inv) != 1 || !strings.Contains(inv[0].Header("Via"), ":"+strconv.Itoa(n2.SIPPort)) {
		t.Fatalf("the phone registered on node 1 should get node 2's INVITE: %v", inv)
	}
	var calls []struct {
		Direction string `json:"direction"`
		Node      string `json:"node"`
		ACode     int    `json:"a_code"`
	}
	if err := json.Unmarshal([]byte(n1.CLI(t, "", "calls", "list", "--tenant", fxTenant, "--json")), &calls); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].Direction != "inbound" || calls[0].Node != "node-2" {
		t.Fatalf("node 1's CLI should list node 2's inbound call: %+v", calls)
	}

	// One rate limit for both nodes: two calls a minute, wherever they go.
	carrier := fx1.answeringCarrier(t, ctx)
	runSIPp(t, ctx, "uac-call", fx1.rep(SIPpOptions{Pause: 300 * time.Millisecond})).RequireSuccess(t)
	runSIPp(t, ctx, "uac-call", fx2.rep(SIPpOptions{Pause: 300 * time.Millisecond})).RequireSuccess(t)
	third := runSIPp(t, ctx, "uac-expect-503", fx1.rep(SIPpOptions{}))
	third.RequireSuccess(t)
	if final, _ := finalResponse(third.Messages(t), "INVITE"); !strings.Contains(final.Header("Reason"), "rate_limited") {
		t.Fatalf("the third call in a minute, across both nodes, must be rate_limited: %q", final.StartLine)
	}
	if n := len(invitesTo(t, carrier, fxCallee)); n != 2 {
		t.Fatalf("the carrier got %d calls, want the 2 the limit allows", n)
	}
}
