package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/store"
)

// The demo tenant of the embedded dev default: one rep with a DID, and a
// carrier trunk on 127.0.0.2 (a loopback address of its own, so the local
// carrier and the local softphone are told apart by source address, as real
// carriers and phones are).
const (
	demoTenant  = "demo"
	demoUser    = "alice"
	demoNumber  = "+14155550100"
	demoCarrier = "127.0.0.2:5080"
)

func demoCredentialsPath(cfg *config.Config) string {
	return filepath.Join(filepath.Dir(cfg.Secrets.KeyFile), "demo-credentials.txt")
}

// seedDemo creates the demo tenant once, on a store with no tenants.
func seedDemo(ctx context.Context, cfg *config.Config, db *store.DB, out io.Writer) error {
	ts, err := db.Tenants(ctx)
	if err != nil || len(ts) > 0 {
		return err
	}
	password, err := randomPassword(16)
	if err != nil {
		return err
	}
	if _, err := db.CreateTenant(ctx, demoTenant, "US"); err != nil {
		return err
	}
	p, err := db.AdminScope(ctx, demoTenant)
	if err != nil {
		return err
	}
	sc := db.In(p)
	if _, err := sc.CreateUser(ctx, store.NewUser{Username: demoUser, Role: store.RoleRep, CallerID: demoNumber, Realm: cfg.SIP.Realm, Password: password}); err != nil {
		return err
	}
	if _, err := sc.AddNumber(ctx, demoNumber, demoUser); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(demoCarrier)
	cidrs, _ := store.ParseCIDRs(host + "/32")
	if _, err := sc.CreateTrunk(ctx, store.NewTrunk{Name: "carrier", Address: demoCarrier, Transport: "udp", InboundFrom: cidrs}); err != nil {
		return err
	}
	body := fmt.Sprintf("username=%s\npassword=%s\nrealm=%s\n", demoUser, password, cfg.SIP.Realm)
	if err := os.WriteFile(demoCredentialsPath(cfg), []byte(body), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "seeded demo tenant %q: rep %q with DID %s, carrier trunk at %s\n", demoTenant, demoUser, demoNumber, demoCarrier)
	return nil
}

// printDemo tells a newcomer how to register a softphone and place a call.
func printDemo(cfg *config.Config, out io.Writer) {
	data, err := os.ReadFile(demoCredentialsPath(cfg))
	if err != nil {
		return
	}
	creds := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			creds[k] = v
		}
	}
	sipPort := "5060"
	for _, l := range cfg.SIP.Listen {
		if la, err := config.ParseListen(l); err == nil && la.Network == "udp" {
			_, sipPort, _ = net.SplitHostPort(la.Addr)
		}
	}
	fmt.Fprintf(out, `
Blackbox is running (embedded default: SQLite and recordings under ./var).

Register a softphone:
  server   %[1]s:%[2]s (UDP or TCP)
  username %[3]s
  password %[4]s
  realm    %[5]s
  e.g. baresip: add to ~/.baresip/accounts
    <sip:%[3]s@%[1]s:%[2]s>;auth_pass=%[4]s;regint=300

Start a local carrier that answers and plays audio (another terminal):
  make carrier        (SIPp on %[6]s)

Then dial a US number, e.g. 2125550111 (New York: the announcement, then the
carrier's tone); numbers in all-party-consent states (California, Florida, ...)
ask the callee to press 1 first (configs/policy.yaml). Calls to %[7]s ring %[3]s.
  blackbox calls list --tenant demo --config %[8]s
`, cfg.SIP.ExternalHost, sipPort, creds["username"], creds["password"], creds["realm"], demoCarrier, demoNumber, cfg.Source())
}

func randomPassword(n int) (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, n)
	for i := range b {
		v, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", err
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b), nil
}
