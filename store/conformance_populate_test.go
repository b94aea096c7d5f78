package store_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// populated is what populate made in one tenant.
type populated struct {
	user   store.User
	trunk  store.Trunk
	call   store.Call      // recording, consent, legal hold, access entry
	rec    store.Recording // of call, being recorded
	doomed store.Recording // stored, its deletion begun
	slot   string          // an active policy slot of user
	token  store.Token
	secret string // the token's secret
	access store.AccessEntry
}

// populate gives a tenant rows in every tenant table through the store's
// own methods: a user with a DID and a registration, a trunk, calls with
// recordings and consent, a legal hold, a pending deletion, an API token, a
// playback entry, policy attempts, spend and a suspension.
func populate(t *testing.T, db *store.DB, s *store.Scope, user, number, trunk string) populated {
	t.Helper()
	ctx := context.Background()
	var p populated
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p.user, err = s.CreateUser(ctx, store.NewUser{Username: user, Role: store.RoleRep, Realm: "bb", Password: "password-of-" + user})
	must(err)
	_, err = s.AddNumber(ctx, number, user)
	must(err)
	p.trunk, err = s.CreateTrunk(ctx, store.NewTrunk{Name: trunk, Address: "192.0.2.1:5060", Username: trunk, Password: "secret-of-" + trunk,
		InboundFrom: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	must(err)
	_, err = s.Register(ctx, store.Registration{UserID: p.user.ID, CallID: "reg-" + user, CSeq: 1, Source: "10.0.0.1:5060", Transport: "udp",
		Node: "n1", Updates: []store.ContactUpdate{{Contact: "sip:" + user + "@10.0.0.1", Expires: time.Hour}}})
	must(err)

	call := func(key string) (store.Call, store.Recording) {
		c := store.Call{ID: store.NewCallID(), UserID: p.user.ID, Direction: store.Outbound, Caller: number, Callee: "+14155550111",
			ACallID: key + "-" + user, InviteAt: time.Now()}
		must(s.InsertCall(ctx, c))
		r, _, err := s.CreateRecording(ctx, newRecording(c.ID, key+"-"+user))
		must(err)
		return c, r
	}
	p.call, p.rec = call("rec")
	_, err = s.RecordConsent(ctx, store.ConsentEvent{CallID: p.call.ID, Party: store.PartyCallee, PromptID: "p",
		PromptVersion: store.PromptVersion("p", hashA), Mode: store.ConsentAnnounce, Result: store.ConsentPlayed, StartedAt: time.Now()})
	must(err)
	_, err = s.PlaceHold(ctx, p.call.ID, "litigation")
	must(err)
	p.access, _, err = s.LogAccess(ctx, store.Access{RecordingID: p.rec.ID, CallID: p.call.ID, UserID: p.user.ID, Username: user,
		Path: store.AccessProxy, RemoteAddr: "203.0.113.1"}, time.Minute)
	must(err)

	_, p.doomed = call("doomed")
	must(s.MarkUploading(ctx, p.doomed.ID, store.RecordingEnd{EndedAt: time.Now(), Duration: time.Second}))
	must(s.MarkStored(ctx, p.doomed.ID, store.RecordingStoredInfo{SHA256: hashA, AudioSHA256: hashB, SizeBytes: 44, Duration: time.Second}))
	_, err = s.BeginRecordingDeletion(ctx, p.doomed.ID, store.DeletionRequest{Kind: store.DeleteByOwner, Reason: "asked by the customer"})
	must(err)

	p.token, p.secret, err = s.CreateToken(ctx, store.NewToken{Username: user, Name: "crm", TTL: time.Hour})
	must(err)

	// Policy: one slot kept active, one settled (spend), one attempt that
	// trips the anomaly rule (suspension).
	now := time.Now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	adm := store.PolicyAdmission{TenantID: s.Principal().TenantID(), UserID: p.user.ID, Username: user, CallID: p.call.ID, Node: "n1", At: now,
		Number: "+14155550111", Country: "US", Prefix: "1415", Lease: time.Hour, Deadline: now.Add(2 * time.Hour), Reserve: 10,
		Spend: store.PolicySpend{Day: day, Month: time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)}}
	v, err := db.PolicyAdmit(ctx, adm)
	if err != nil || !v.Admitted {
		t.Fatalf("admit: %+v %v", v, err)
	}
	p.slot = v.SlotID
	if v, err = db.PolicyAdmit(ctx, adm); err != nil || !v.Admitted {
		t.Fatalf("second admit: %+v %v", v, err)
	}
	_, err = db.PolicySettle(ctx, store.PolicySettlement{TenantID: adm.TenantID, UserID: p.user.ID, Username: user, SlotID: v.SlotID, At: now,
		Answered: true, Talk: time.Minute, Cost: 7})
	must(err)
	adm.Anomaly.User = store.AnomalyRule{MaxAttempts: 2, AttemptsWindow: time.Hour}
	if v, err = db.PolicyAdmit(ctx, adm); err != nil || v.Suspension == nil {
		t.Fatalf("admit tripping the anomaly rule: %+v %v", v, err)
	}
	return p
}
