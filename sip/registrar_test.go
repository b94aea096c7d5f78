package sip_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	bbsip "github.com/blackbox-gw/blackbox/sip"
)

// answer re-sends req with credentials computed for the challenge of the
// given algorithm in res.
func answer(t *testing.T, p *phone, req *sip.Request, res *sip.Response, alg, user, password string, nc int) *sip.Response {
	t.Helper()
	var chal *digest.Challenge
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		c, err := digest.ParseChallenge(h.Value())
		if err == nil && strings.EqualFold(c.Algorithm, alg) {
			chal = c
		}
	}
	if chal == nil {
		t.Fatalf("no %s challenge in %s", alg, res.StartLine())
	}
	return resend(t, p, req, chal, alg, user, password, nc)
}

func resend(t *testing.T, p *phone, req *sip.Request, chal *digest.Challenge, alg, user, password string, nc int) *sip.Response {
	t.Helper()
	cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: req.Recipient.String(), Username: user, Password: password, Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	r := req.Clone()
	r.RemoveHeader("Via")
	r.RemoveHeader("Authorization")
	r.AppendHeader(sip.NewHeader("Authorization", cred.String()))
	r.CSeq().SeqNo += uint32(nc) + 1
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := p.cli.Do(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func challengeFor(t *testing.T, p *phone, req *sip.Request) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req.Clone())
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Fatalf("unauthenticated REGISTER: got %s, want 401", res.StartLine())
	}
	return res
}

func TestRegisterDigestAlgorithms(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	g.provision(t, "acme", "alice", "alice-secret-pw")
	p := newPhone(t)
	req := registerRequest(g, "alice", []string{"<sip:alice@127.0.0.1:5999>"}, 300)
	res := challengeFor(t, p, req)
	algs := map[string]bool{}
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		c, err := digest.ParseChallenge(h.Value())
		if err != nil {
			t.Fatal(err)
		}
		algs[strings.ToUpper(c.Algorithm)] = true
		if len(c.QOP) != 1 || c.QOP[0] != "auth" || c.Realm != testRealm {
			t.Fatalf("challenge %q: want qop=auth realm=%s", h.Value(), testRealm)
		}
	}
	if !algs["SHA-256"] || !algs["MD5"] {
		t.Fatalf("want SHA-256 and MD5 challenges, got %v", algs)
	}
	for i, alg := range []string{"SHA-256", "MD5"} {
		res := answer(t, p, req, res, alg, "alice", "alice-secret-pw", i+1)
		if res.StatusCode != 200 {
			t.Fatalf("%s: got %s", alg, res.StartLine())
		}
		if c := res.Contact(); c == nil || c.Address.Port != 5999 {
			t.Fatalf("%s: 200 lacks the binding: %v", alg, res.GetHeaders("Contact"))
		}
	}
}

// An unknown user and a wrong password must be indistinguishable.
func TestRegisterNoUserEnumeration(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	g.provision(t, "acme", "alice", "alice-secret-pw")
	p := newPhone(t)
	wrong := answer(t, p, registerRequest(g, "alice", []string{"<sip:alice@127.0.0.1:5999>"}, 300),
		challengeFor(t, p, registerRequest(g, "alice", nil, -1)), "SHA-256", "alice", "not-the-password", 1)
	unknown := answer(t, p, registerRequest(g, "mallory", []string{"<sip:mallory@127.0.0.1:5999>"}, 300),
		challengeFor(t, p, registerRequest(g, "mallory", nil, -1)), "SHA-256", "mallory", "not-the-password", 1)
	if wrong.StatusCode != 403 || unknown.StatusCode != 403 {
		t.Fatalf("wrong password %s, unknown user %s: want 403 for both", wrong.StartLine(), unknown.StartLine())
	}
	if wrong.Reason != unknown.Reason || headerNames(wrong) != headerNames(unknown) || string(wrong.Body()) != string(unknown.Body()) {
		t.Fatalf("responses differ:\n%s\n---\n%s", wrong, unknown)
	}
}

func headerNames(r *sip.Response) string {
	var names []string
	for _, h := range r.Headers() {
		names = append(names, h.Name())
	}
	return strings.Join(names, ",")
}

func TestRegisterExpiresAndContacts(t *testing.T) {
	g := startGateway(t, gatewayOptions{register: bbsip.RegisterOptions{MinExpires: 60, MaxExpires: 600, DefaultExpires: 300, MaxContacts: 5, SweepInterval: time.Second}})
	g.provision(t, "acme", "alice", "alice-secret-pw")
	p := newPhone(t)

	res := p.register(t, g, "alice", "alice-secret-pw", []string{"<sip:alice@127.0.0.1:5001>"}, 30)
	if res.StatusCode != 423 {
		t.Fatalf("too brief: got %s", res.StartLine())
	}
	if h := res.GetHeader("Min-Expires"); h == nil || h.Value() != "60" {
		t.Fatalf("423 without Min-Expires: 60: %v", h)
	}
	res = p.register(t, g, "alice", "alice-secret-pw", []string{"<sip:alice@127.0.0.1:5001>", "<sip:alice@127.0.0.1:5002>;expires=120"}, 7200)
	if res.StatusCode != 200 {
		t.Fatalf("two contacts: %s", res.StartLine())
	}
	got := contactExpires(res)
	if len(got) != 2 || got["sip:alice@127.0.0.1:5001"] < 590 || got["sip:alice@127.0.0.1:5001"] > 600 || got["sip:alice@127.0.0.1:5002"] > 120 {
		t.Fatalf("bindings after register (want 5001 clamped to 600s, 5002 at 120s): %v", got)
	}
	res = p.register(t, g, "alice", "alice-secret-pw", nil, -1)
	if res.StatusCode != 200 || len(contactExpires(res)) != 2 {
		t.Fatalf("query: %s %v", res.StartLine(), contactExpires(res))
	}
	res = p.register(t, g, "alice", "alice-secret-pw", []string{"<sip:alice@127.0.0.1:5002>;expires=0"}, -1)
	if got := contactExpires(res); res.StatusCode != 200 || len(got) != 1 {
		t.Fatalf("unregister one: %s %v", res.StartLine(), got)
	}
	res = p.register(t, g, "alice", "alice-secret-pw", []string{"*"}, 300)
	if res.StatusCode != 400 {
		t.Fatalf("Contact: * with Expires 300: got %s, want 400", res.StartLine())
	}
	res = p.register(t, g, "alice", "alice-secret-pw", []string{"*"}, 0)
	if got := contactExpires(res); res.StatusCode != 200 || len(got) != 0 {
		t.Fatalf("unregister all: %s %v", res.StartLine(), got)
	}
	// Registering someone else's address of record is refused.
	g.provision(t, "globex", "bob", "bob-secret-pw-1")
	req := registerRequest(g, "bob", []string{"<sip:bob@127.0.0.1:5003>"}, 300)
	res = answer(t, p, req, challengeFor(t, p, req), "SHA-256", "alice", "alice-secret-pw", 1)
	if res.StatusCode != 403 {
		t.Fatalf("alice registering bob's AOR: got %s", res.StartLine())
	}
}

func contactExpires(res *sip.Response) map[string]int {
	out := map[string]int{}
	for _, h := range res.GetHeaders("Contact") {
		c := h.(*sip.ContactHeader)
		v, _ := c.Params.Get("expires")
		n := 0
		for _, ch := range v {
			n = n*10 + int(ch-'0')
		}
		out[c.Address.String()] = n
	}
	return out
}

func TestRegisterStaleNonceAndReplay(t *testing.T) {
	g := startGateway(t, gatewayOptions{nonceTTL: time.Second})
	g.provision(t, "acme", "alice", "alice-secret-pw")
	p := newPhone(t)
	req := registerRequest(g, "alice", []string{"<sip:alice@127.0.0.1:5001>"}, 300)
	res := challengeFor(t, p, req)
	var chal *digest.Challenge
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		if c, _ := digest.ParseChallenge(h.Value()); c != nil && c.Algorithm == "SHA-256" {
			chal = c
		}
	}
	if r := resend(t, p, req, chal, "SHA-256", "alice", "alice-secret-pw", 1); r.StatusCode != 200 {
		t.Fatalf("first use: %s", r.StartLine())
	}
	// The same nonce count again is a replay.
	if r := resend(t, p, req, chal, "SHA-256", "alice", "alice-secret-pw", 1); r.StatusCode != 401 {
		t.Fatalf("replayed nc: got %s, want 401", r.StartLine())
	}
	time.Sleep(1200 * time.Millisecond)
	r := resend(t, p, req, chal, "SHA-256", "alice", "alice-secret-pw", 5)
	if r.StatusCode != 401 {
		t.Fatalf("expired nonce: got %s, want 401 stale", r.StartLine())
	}
	stale := false
	for _, h := range r.GetHeaders("WWW-Authenticate") {
		if c, _ := digest.ParseChallenge(h.Value()); c != nil && c.Stale {
			stale = true
		}
	}
	if !stale {
		t.Fatal("expired nonce with the right password must be answered stale=true")
	}
}
