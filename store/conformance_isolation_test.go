package store_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// notIsolation are the exported methods with no tenant data to isolate.
var notIsolation = map[string]string{
	"DB.Close":           "lifecycle",
	"DB.Backend":         "names the backend",
	"DB.Ping":            "readiness",
	"DB.In":              "mints a scope; every case below goes through it",
	"DB.SchemaVersion":   "binary's schema version",
	"Scope.Principal":    "returns the scope's own principal",
	"DB.RotateSecrets":   "operator action over every tenant, audited in each: TestRotateSecrets",
	"DB.RawUnscoped":     "test-only hook",
	"DB.RawUnscopedExec": "test-only hook",
	"Scope.RawStrings":   "test-only hook",
	"Scope.RawExec":      "test-only hook",
	"DB.JobsDB":          "the job queue's handle; jobs carry their tenant from the enqueuing scope (store/jobs TestEnqueueIdempotent, TestJobWithoutTenant)",
}

// tenantState is everything of one tenant that a scope can read.
type tenantState struct {
	Tenant     store.Tenant
	Users      []store.User
	Numbers    []store.Number
	Trunks     []store.Trunk
	Bindings   [][]store.Binding
	Calls      []store.Call
	Recordings []store.Recording
	Consent    [][]store.ConsentEvent
	Audit      []store.AuditEvent
	Tokens     []store.Token
	Holds      []store.Hold
	Access     []store.AccessEntry
	Deletions  []store.RecordingDeletion
	Suspended  []store.Suspension
	Spent      int64
}

func snapshot(t *testing.T, s *store.Scope) tenantState {
	t.Helper()
	ctx := context.Background()
	var st tenantState
	var err error
	must := fatalIf(t)
	st.Tenant, err = s.Tenant(ctx)
	must(err)
	st.Users, err = s.Users(ctx)
	must(err)
	st.Numbers, err = s.Numbers(ctx)
	must(err)
	st.Trunks, err = s.Trunks(ctx)
	must(err)
	for _, u := range st.Users {
		bs, err := s.Bindings(ctx, u.ID)
		must(err)
		st.Bindings = append(st.Bindings, bs)
	}
	st.Calls, err = s.Calls(ctx, store.CallFilter{})
	must(err)
	for _, c := range st.Calls {
		evs, err := s.ConsentEvents(ctx, c.ID)
		must(err)
		st.Consent = append(st.Consent, evs)
	}
	st.Recordings, err = s.Recordings(ctx, store.RecordingFilter{})
	must(err)
	st.Audit, err = s.AuditEvents(ctx, store.AuditFilter{Limit: 1000})
	must(err)
	st.Tokens, err = s.Tokens(ctx, store.TokenFilter{})
	must(err)
	for i := range st.Tokens {
		st.Tokens[i].LastUsedAt = time.Time{} // DB.TokenPrincipal uses A's token, legitimately
	}
	st.Holds, err = s.Holds(ctx, store.HoldFilter{Released: true})
	must(err)
	st.Access, err = s.AccessLog(ctx, store.AccessFilter{Limit: 1000})
	must(err)
	st.Deletions, err = s.PendingDeletions(ctx)
	must(err)
	st.Suspended, err = s.Suspensions(ctx, store.SuspensionFilter{Lifted: true})
	must(err)
	st.Spent, err = s.PolicySpent(ctx, "", time.Time{})
	must(err)
	return st
}

// isolationFixture is two populated tenants; B acts, A must not notice.
type isolationFixture struct {
	db   *store.DB
	a, b *store.Scope
	A, B populated
}

func expectErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func onlyTenant[T any](t *testing.T, what string, items []T, err error, tenant string, tenantOf func(T) string) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	for _, it := range items {
		if tenantOf(it) != tenant {
			t.Errorf("%s returned a row of tenant %s", what, tenantOf(it))
		}
	}
}

// isolationCases: what tenant B gets from each method aimed at A's rows.
var isolationCases = map[string]func(t *testing.T, f *isolationFixture){
	"DB.CreateTenant": func(t *testing.T, f *isolationFixture) {
		_, err := f.db.CreateTenant(context.Background(), "acme", "US")
		expectErr(t, "CreateTenant with A's name", err, store.ErrConflict)
	},
	"DB.AdminScope": func(t *testing.T, f *isolationFixture) {
		p, err := f.db.AdminScope(context.Background(), "globex")
		if err != nil || p.TenantID() != f.b.Principal().TenantID() || p.Kind() != store.KindAdmin {
			t.Errorf("AdminScope(globex) = %+v %v", p, err)
		}
	},
	"DB.Tenants": func(t *testing.T, f *isolationFixture) {
		ts, err := f.db.Tenants(context.Background())
		if err != nil || len(ts) != 2 {
			t.Errorf("operators list every tenant: %v %v", ts, err)
		}
	},
	"Scope.Tenant": func(t *testing.T, f *isolationFixture) {
		tn, err := f.b.Tenant(context.Background())
		if err != nil || tn.ID != f.b.Principal().TenantID() {
			t.Errorf("B's Tenant = %+v %v", tn, err)
		}
	},
	"Scope.CreateUser": func(t *testing.T, f *isolationFixture) {
		_, err := f.b.CreateUser(context.Background(), store.NewUser{Username: f.A.user.Username, Role: store.RoleRep, Realm: "bb", Password: "another password"})
		expectErr(t, "CreateUser with A's username (gateway-wide unique)", err, store.ErrConflict)
	},
	"Scope.SetPassword": func(t *testing.T, f *isolationFixture) {
		expectErr(t, "SetPassword of A's user", f.b.SetPassword(context.Background(), f.A.user.Username, "bb", "hijacked password"), store.ErrNotFound)
	},
	"Scope.User": func(t *testing.T, f *isolationFixture) {
		_, err := f.b.User(context.Background(), f.A.user.Username)
		expectErr(t, "User(A's username)", err, store.ErrNotFound)
	},
	"Scope.UserByID": func(t *testing.T, f *isolationFixture) {
		_, err := f.b.UserByID(context.Background(), f.A.user.ID)
		expectErr(t, "UserByID(A's id)", err, store.ErrNotFound)
	},
	"Scope.Users": func(t *testing.T, f *isolationFixture) {
		us, err := f.b.Users(context.Background())
		onlyTenant(t, "Users", us, err, f.b.Principal().TenantID(), func(u store.User) string { return u.TenantID })
	},
	"DB.SIPAccount": func(t *testing.T, f *isolationFixture) {
		a, err := f.db.SIPAccount(context.Background(), f.A.user.Username)
		if err != nil || a.Principal.TenantID() != f.a.Principal().TenantID() || a.Principal.UserID() != f.A.user.ID {
			t.Errorf("SIPAccount mints A's principal: %+v %v", a.Principal, err)
		}
	},
	"Scope.AddNumber": func(t *testing.T, f *isolationFixture) {
		_, err := f.b.AddNumber(context.Background(), "+14155550188", f.A.user.Username)
		expectErr(t, "AddNumber for A's user", err, store.ErrNotFound)
		_, err = f.b.AddNumber(context.Background(), "+14155550100", "gina")
		expectErr(t, "AddNumber of A's DID", err, store.ErrConflict)
	},
	"Scope.Numbers": func(t *testing.T, f *isolationFixture) {
		ns, err := f.b.Numbers(context.Background())
		onlyTenant(t, "Numbers", ns, err, f.b.Principal().TenantID(), func(n store.Number) string { return n.TenantID })
	},
	"Scope.NumbersOf": func(t *testing.T, f *isolationFixture) {
		ns, err := f.b.NumbersOf(context.Background(), f.A.user.ID)
		if err != nil || len(ns) != 0 {
			t.Errorf("NumbersOf(A's user) = %v %v", ns, err)
		}
	},
	"Scope.Number": func(t *testing.T, f *isolationFixture) {
		_, err := f.b.Number(context.Background(), "+14155550100")
		expectErr(t, "Number(A's DID)", err, store.ErrNotFound)
	},
	"DB.NumberExists": func(t *testing.T, f *isolationFixture) {
		if ok, err := f.db.NumberExists(context.Background(), "+14155550100"); err != nil || !ok {
			t.Errorf("NumberExists(A's DID) = %v %v", ok, err)
		}
	},
	"Scope.CreateTrunk": func(t *testing.T, f *isolationFixture) {
		// Trunk names are per tenant: B may use A's name for its own trunk.
		tr, err := f.b.CreateTrunk(context.Background(), store.NewTrunk{Name: f.A.trunk.Name, Address: "198.51.100.1:5060"})
		if err != nil || tr.TenantID != f.b.Principal().TenantID() {
			t.Errorf("CreateTrunk with A's trunk name in B: %+v %v", tr, err)
		}
	},
	"Scope.Trunks": func(t *testing.T, f *isolationFixture) {
		ts, err := f.b.Trunks(context.Background())
		onlyTenant(t, "Trunks", ts, err, f.b.Principal().TenantID(), func(tr store.Trunk) string { return tr.TenantID })
	},
	"Scope.Trunk": func(t *testing.T, f *isolationFixture) {
		_, err := f.b.Trunk(context.Background(), f.A.trunk.ID)
		expectErr(t, "Trunk(A's id)", err, store.ErrNotFound)
	},
	"DB.TrunksFrom": func(t *testing.T, f *isolationFixture) {
		ps, err := f.db.TrunksFrom(context.Background(), netip.MustParseAddr("192.0.2.9"))
		if err != nil || len(ps) != 2 || ps[0].TenantID() == ps[1].TenantID() {
			t.Errorf("a carrier shared by both tenants authenticates as each: %v %v", ps, err)
		}
	},
	"Scope.Register": func(t *testing.T, f *isolationFixture) {
		_, err := f.b.Register(context.Background(), store.Registration{UserID: f.A.user.ID, CallID: "evil", CSeq: 99, Source: "203.0.113.5:5060",
			Transport: "udp", Updates: []store.ContactUpdate{{Contact: "sip:evil@203.0.113.5", Expires: time.Hour}}})
		expectErr(t, "Register for A's user", err, store.ErrNotFound)
	},
	"Scope.Bindings": func(t *testing.T, f *isolationFixture) {
		bs, err := f.b.Bindings(context.Background(), f.A.user.ID)
		if err != nil || len(bs) != 0 {
			t.Errorf("Bindings(A's user) = %v %v", bs, err)
		}
	},
	"DB.SweepBindings": func(t *testing.T, f *isolationFixture) {
		if n, err := f.db.SweepBindings(context.Background()); err != nil || n != 0 {
			t.Errorf("SweepBindings removed %d live bindings (%v)", n, err)
		}
	},
	"DB.ActiveBindings": func(t *testing.T, f *isolationFixture) {
		if n, err := f.db.ActiveBindings(context.Background()); err != nil || n != 2 {
			t.Errorf("ActiveBindings = %d %v; want both tenants' 2", n, err)
		}
	},
	"DB.HasBindingFrom": func(t *testing.T, f *isolationFixture) {
		if ok, err := f.db.HasBindingFrom(context.Background(), netip.MustParseAddr("10.0.0.1")); err != nil || !ok {
			t.Errorf("HasBindingFrom = %v %v", ok, err)
		}
	},
	"Scope.InsertCall": func(t *testing.T, f *isolationFixture) {
		c := f.A.call
		c.EndReason = "forged"
		expectErr(t, "InsertCall with A's call id", f.b.InsertCall(context.Background(), c), store.ErrConflict)
	},
	"Scope.UpdateCall": func(t *testing.T, f *isolationFixture) {
		c := f.A.call
		c.EndReason = "tampered"
		expectErr(t, "UpdateCall of A's call", f.b.UpdateCall(context.Background(), c), store.ErrNotFound)
	},
	"Scope.Call": func(t *testing.T, f *isolationFixture) {
		_, err := f.b.Call(context.Background(), f.A.call.ID)
		expectErr(t, "Call(A's id)", err, store.ErrNotFound)
	},
	"Scope.Calls": func(t *testing.T, f *isolationFixture) {
		cs, err := f.b.Calls(context.Background(), store.CallFilter{UserID: f.A.user.ID})
		if err != nil || len(cs) != 0 {
			t.Errorf("Calls of A's user = %v %v", cs, err)
		}
		cs, err = f.b.Calls(context.Background(), store.CallFilter{})
		onlyTenant(t, "Calls", cs, err, f.b.Principal().TenantID(), func(c store.Call) string { return c.TenantID })
	},
	"Scope.Audit": func(t *testing.T, f *isolationFixture) {
		if err := f.b.Audit(context.Background(), "test.probe", "call:"+f.A.call.ID, nil); err != nil {
			t.Errorf("Audit: %v", err)
		}
	},
	"Scope.AuditEvents": func(t *testing.T, f *isolationFixture) {
		evs, err := f.b.AuditEvents(context.Background(), store.AuditFilter{Limit: 1000})
		onlyTenant(t, "AuditEvents", evs, err, f.b.Principal().TenantID(), func(e store.AuditEvent) string { return e.TenantID })
	},
	"Scope.RecordConsent": func(t *testing.T, f *isolationFixture) {
		// B may only ever add to its own record, whatever call id it names.
		e, err := f.b.RecordConsent(context.Background(), store.ConsentEvent{CallID: f.A.call.ID, Party: store.PartyCaller, PromptID: "p",
			PromptVersion: store.PromptVersion("p", hashB), Mode: store.ConsentAnnounce, Result: store.ConsentPlayed, StartedAt: time.Now()})
		if err != nil || e.TenantID != f.b.Principal().TenantID() {
			t.Errorf("RecordConsent: %+v %v", e, err)
		}
	},
	"Scope.ConsentEvents": func(t *testing.T, f *isolationFixture) {
		evs, err := f.b.ConsentEvents(context.Background(), f.A.call.ID)
		onlyTenant(t, "ConsentEvents(A's call)", evs, err, f.b.Principal().TenantID(), func(e store.ConsentEvent) string { return e.TenantID })
	},
	"Scope.CreateRecording": func(t *testing.T, f *isolationFixture) {
		r := newRecording(f.A.call.ID, "steal")
		r.ID = f.A.rec.ID
		_, _, err := f.b.CreateRecording(context.Background(), r)
		expectErr(t, "CreateRecording with A's provider id", err, store.ErrConflict)
	},
	"Scope.Recording": func(t *testing.T, f *isolationFixture) {
		_, err := f.b.Recording(context.Background(), f.A.rec.ID)
		expectErr(t, "Recording(A's id)", err, store.ErrNotFound)
	},
	"Scope.Recordings": func(t *testing.T, f *isolationFixture) {
		rs, err := f.b.Recordings(context.Background(), store.RecordingFilter{CallID: f.A.call.ID})
		if err != nil || len(rs) != 0 {
			t.Errorf("Recordings of A's call = %v %v", rs, err)
		}
	},
	"Scope.MarkUploading": func(t *testing.T, f *isolationFixture) {
		expectErr(t, "MarkUploading(A's)", f.b.MarkUploading(context.Background(), f.A.rec.ID, store.RecordingEnd{EndedAt: time.Now()}), store.ErrNotFound)
	},
	"Scope.RecordUploadAttempt": func(t *testing.T, f *isolationFixture) {
		expectErr(t, "RecordUploadAttempt(A's)", f.b.RecordUploadAttempt(context.Background(), f.A.rec.ID, "x"), store.ErrNotFound)
	},
	"Scope.MarkStored": func(t *testing.T, f *isolationFixture) {
		err := f.b.MarkStored(context.Background(), f.A.rec.ID, store.RecordingStoredInfo{SHA256: hashA, AudioSHA256: hashB, EndedAt: time.Now()})
		expectErr(t, "MarkStored(A's)", err, store.ErrNotFound)
	},
	"Scope.MarkFailed": func(t *testing.T, f *isolationFixture) {
		expectErr(t, "MarkFailed(A's)", f.b.MarkFailed(context.Background(), f.A.rec.ID, "x"), store.ErrNotFound)
	},
	"DB.PendingRecordings": func(t *testing.T, f *isolationFixture) {
		rs, err := f.db.PendingRecordings(context.Background(), "n1")
		if err != nil || len(rs) != 2 || rs[0].TenantID == rs[1].TenantID {
			t.Errorf("the uploader sees each tenant's pending recording with its tenant: %v %v", rs, err)
		}
	},
}

// TestTenantIsolation runs every store method as tenant B against tenant A's
// rows, on both backends, then checks A's state did not change at all.
func TestTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		db, sa, sb := tenantsIn(t, h)
		f := &isolationFixture{db: db, a: sa, b: sb}
		f.A = populate(t, db, sa, "alice", "+14155550100", "carrier-a")
		f.B = populate(t, db, sb, "gina", "+14155550199", "carrier-b")

		before := snapshot(t, sa)
		names := make([]string, 0, len(isolationCases))
		for name := range isolationCases {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			t.Run(name, func(t *testing.T) { isolationCases[name](t, f) })
		}
		after := snapshot(t, sa)
		bv, av := reflect.ValueOf(before), reflect.ValueOf(after)
		for i := range bv.NumField() {
			if !reflect.DeepEqual(bv.Field(i).Interface(), av.Field(i).Interface()) {
				t.Errorf("tenant A's %s changed while B acted:\nbefore %+v\nafter  %+v", bv.Type().Field(i).Name, bv.Field(i), av.Field(i))
			}
		}
	})
}

// TestIsolationCoversEveryMethod fails when a store method has no isolation
// case: add one to isolationCases (or, if it touches no tenant data, to
// notIsolation with the reason).
func TestIsolationCoversEveryMethod(t *testing.T) {
	var missing []string
	for prefix, typ := range map[string]reflect.Type{"DB": reflect.TypeOf(&store.DB{}), "Scope": reflect.TypeOf(&store.Scope{})} {
		for i := 0; i < typ.NumMethod(); i++ {
			name := prefix + "." + typ.Method(i).Name
			if _, ok := isolationCases[name]; ok {
				continue
			}
			if _, ok := notIsolation[name]; !ok {
				missing = append(missing, name)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("store methods without a tenant isolation case: %s", strings.Join(missing, ", "))
	}
}
