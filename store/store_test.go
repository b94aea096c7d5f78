package store_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/secrets"
)

func TestTenantsUsersNumbers(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		db := h.db(t)
		if _, err := db.CreateTenant(ctx, "acme", "us"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateTenant(ctx, "acme", "US"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate tenant: got %v, want ErrConflict", err)
		}
		if _, err := db.CreateTenant(ctx, "bad name", "US"); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad name: got %v", err)
		}
		if _, err := db.CreateTenant(ctx, "globex", "USA"); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad country: got %v", err)
		}
		if _, err := db.CreateTenant(ctx, "globex", "CA"); err != nil {
			t.Fatal(err)
		}
		a, err := db.AdminScope(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		b, err := db.AdminScope(ctx, "globex")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.AdminScope(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown tenant: %v", err)
		}
		sa, sb := db.In(a), db.In(b)
		alice, err := sa.CreateUser(ctx, store.NewUser{Username: "alice", Role: store.RoleRep, Realm: "bb", Password: "correct horse"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sb.CreateUser(ctx, store.NewUser{Username: "alice", Role: store.RoleRep, Realm: "bb", Password: "correct horse"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("usernames are gateway-wide: got %v", err)
		}
		if _, err := sa.CreateUser(ctx, store.NewUser{Username: "bob", Role: "admin", Realm: "bb", Password: "correct horse"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad role: %v", err)
		}
		if _, err := sa.CreateUser(ctx, store.NewUser{Username: "bob", Role: store.RoleRep, Realm: "bb", Password: "short"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("short password: %v", err)
		}
		acct, err := db.SIPAccount(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if acct.Principal.TenantID() != a.TenantID() || acct.Principal.UserID() != alice.ID || acct.Principal.Kind() != store.KindUser {
			t.Fatalf("principal %+v", acct.Principal)
		}
		if acct.HA1MD5 != store.HA1("MD5", "alice", "bb", "correct horse") || acct.HA1SHA256 != store.HA1("SHA-256", "alice", "bb", "correct horse") {
			t.Fatal("HA1 mismatch")
		}
		if _, err := db.SIPAccount(ctx, "mallory"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}

		if _, err := sa.AddNumber(ctx, "+14155550100", "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.AddNumber(ctx, "+14155550100", "alice"); err == nil {
			t.Fatal("tenant B assigned tenant A's user")
		}
		if _, err := sa.AddNumber(ctx, "4155550100", "alice"); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("non-E.164: %v", err)
		}
		if ns, _ := sb.Numbers(ctx); len(ns) != 0 {
			t.Fatalf("tenant B sees %d numbers of A", len(ns))
		}
		if _, err := sb.User(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tenant B reads A's user: %v", err)
		}
		ns, err := sa.NumbersOf(ctx, alice.ID)
		if err != nil || len(ns) != 1 || ns[0].Number != "+14155550100" {
			t.Fatalf("numbers of alice: %v %v", ns, err)
		}
	})
}

func TestTrunksSealAndInboundRoute(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		db := h.db(t)
		for _, n := range []string{"acme", "globex"} {
			if _, err := db.CreateTenant(ctx, n, "US"); err != nil {
				t.Fatal(err)
			}
		}
		a, _ := db.AdminScope(ctx, "acme")
		b, _ := db.AdminScope(ctx, "globex")
		sa, sb := db.In(a), db.In(b)
		carrier, _ := store.ParseCIDRs("192.0.2.0/24")
		const secret = "trunk-password-7d1c"
		tr, err := sa.CreateTrunk(ctx, store.NewTrunk{Name: "carrier", Address: "192.0.2.10:5060", Username: "acme", Password: secret, InboundFrom: carrier})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sb.CreateTrunk(ctx, store.NewTrunk{Name: "carrier", Address: "192.0.2.10:5060", InboundFrom: carrier}); err != nil {
			t.Fatal(err)
		}
		for _, u := range []struct {
			s    *store.Scope
			user string
			num  string
		}{{sa, "alice", "+14155550100"}, {sb, "gina", "+14155550199"}} {
			if _, err := u.s.CreateUser(ctx, store.NewUser{Username: u.user, Role: store.RoleRep, Realm: "bb", Password: "correct horse"}); err != nil {
				t.Fatal(err)
			}
			if _, err := u.s.AddNumber(ctx, u.num, u.user); err != nil {
				t.Fatal(err)
			}
		}
		got, err := sa.Trunk(ctx, tr.ID)
		if err != nil || got.Password != secret {
			t.Fatalf("trunk password round trip: %q %v", got.Password, err)
		}
		if _, err := sb.Trunk(ctx, tr.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tenant B reads A's trunk: %v", err)
		}
		db.Close()
		for name, data := range h.atRest(t) {
			if bytes.Contains(data, []byte(secret)) {
				t.Fatalf("trunk password in plaintext in %s", name)
			}
		}
		db2 := h.open(t, store.Options{})
		if _, err := db2.In(a).Trunk(ctx, tr.ID); !errors.Is(err, secrets.ErrNoKey) {
			t.Fatalf("reading a sealed password without a key must fail clearly, got %v", err)
		}

		src := netip.MustParseAddr("192.0.2.44")
		ps, err := db2.TrunksFrom(ctx, src)
		if err != nil || len(ps) != 2 || ps[0].Kind() != store.KindTrunk {
			t.Fatalf("shared carrier matches both tenants' trunks: %v %v", ps, err)
		}
		var found []string
		for _, p := range ps {
			if n, err := db2.In(p).Number(ctx, "+14155550199"); err == nil {
				found = append(found, n.Username)
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		}
		if len(found) != 1 || found[0] != "gina" {
			t.Fatalf("DID must resolve in exactly one tenant's scope: %v", found)
		}
		if _, err := db2.TrunksFrom(ctx, netip.MustParseAddr("198.51.100.1")); !errors.Is(err, store.ErrUnknownSource) {
			t.Fatalf("unknown source: %v", err)
		}
	})
}

func TestRegisterBindings(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		db := h.open(t, store.Options{Now: clock})
		db.CreateTenant(ctx, "acme", "US")
		a, _ := db.AdminScope(ctx, "acme")
		u, err := db.In(a).CreateUser(ctx, store.NewUser{Username: "alice", Role: store.RoleRep, Realm: "bb", Password: "correct horse"})
		if err != nil {
			t.Fatal(err)
		}
		acct, _ := db.SIPAccount(ctx, "alice")
		s := db.In(acct.Principal)
		reg := store.Registration{UserID: u.ID, CallID: "c1", CSeq: 1, Source: "10.0.0.1:5060", Transport: "udp", MaxContacts: 2,
			Updates: []store.ContactUpdate{{Contact: "sip:alice@10.0.0.1:5060", Expires: time.Hour}}}
		bs, err := s.Register(ctx, reg)
		if err != nil || len(bs) != 1 {
			t.Fatalf("register: %v %v", bs, err)
		}
		if _, err := s.Register(ctx, reg); !errors.Is(err, store.ErrOutOfOrder) {
			t.Fatalf("replayed cseq: %v", err)
		}
		reg.CSeq = 2
		reg.Updates = []store.ContactUpdate{{Contact: "sip:alice@10.0.0.2:5060", Expires: time.Hour}}
		reg.CallID = "c2"
		if bs, _ = s.Register(ctx, reg); len(bs) != 2 {
			t.Fatalf("two contacts: %d", len(bs))
		}
		now = now.Add(time.Second)
		reg.CallID = "c3"
		reg.Updates = []store.ContactUpdate{{Contact: "sip:alice@10.0.0.3:5060", Expires: 10 * time.Second}}
		if bs, _ = s.Register(ctx, reg); len(bs) != 2 || bs[0].Contact != "sip:alice@10.0.0.3:5060" {
			t.Fatalf("max contacts evicts the stalest: %+v", bs)
		}
		now = now.Add(11 * time.Second)
		if bs, _ = s.Bindings(ctx, u.ID); len(bs) != 1 {
			t.Fatalf("expired binding still listed: %+v", bs)
		}
		if n, err := db.SweepBindings(ctx); err != nil || n != 1 {
			t.Fatalf("sweep: %d %v", n, err)
		}
		reg.RemoveAll, reg.Updates, reg.CSeq = true, nil, 9
		if bs, err = s.Register(ctx, reg); err != nil || len(bs) != 0 {
			t.Fatalf("remove all: %v %v", bs, err)
		}
	})
}

func TestCallsAndAudit(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		db := h.db(t)
		db.CreateTenant(ctx, "acme", "US")
		db.CreateTenant(ctx, "globex", "US")
		a, _ := db.AdminScope(ctx, "acme")
		b, _ := db.AdminScope(ctx, "globex")
		c := store.Call{ID: store.NewCallID(), Direction: store.Outbound, Caller: "+14155550100", Callee: "+14155550111",
			ACallID: "abc", InviteAt: time.Now()}
		if err := db.In(a).InsertCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		c.EndAt, c.EndReason, c.HangupBy, c.ACode = time.Now(), "bye", "callee", 200
		if err := db.In(b).UpdateCall(ctx, c); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tenant B updated A's call: %v", err)
		}
		if err := db.In(a).UpdateCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := db.In(a).Call(ctx, c.ID)
		if err != nil || got.EndReason != "bye" || got.TenantID != a.TenantID() {
			t.Fatalf("call: %+v %v", got, err)
		}
		if cs, _ := db.In(b).Calls(ctx, store.CallFilter{}); len(cs) != 0 {
			t.Fatal("tenant B lists A's calls")
		}
		evs, err := db.In(a).AuditEvents(ctx, store.AuditFilter{Action: "tenant.create"})
		if err != nil || len(evs) != 1 || evs[0].Object != "tenant:acme" {
			t.Fatalf("audit: %+v %v", evs, err)
		}
	})
}
