package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

func TestAccessLogFoldsSessions(t *testing.T) {
	ctx := context.Background()
	c := openClocked(t)
	idle := 10 * time.Minute
	a := store.Access{RecordingID: "r1", CallID: "c1", UserID: "u1", Username: "alice", Path: store.AccessProxy, RemoteAddr: "192.0.2.1"}

	e1, fresh, err := c.a.LogAccess(ctx, a, idle)
	if err != nil || !fresh || e1.Requests != 1 || e1.Username != "alice" || e1.Path != store.AccessProxy {
		t.Fatalf("first: %+v %v %v", e1, fresh, err)
	}
	c.clock.Advance(idle) // exactly the idle window: same session
	e2, fresh, err := c.a.LogAccess(ctx, a, idle)
	if err != nil || fresh || e2.ID != e1.ID || e2.Requests != 2 || !e2.LastAt.Equal(c.clock.Now()) || !e2.StartedAt.Equal(e1.StartedAt) {
		t.Fatalf("second: %+v %v %v", e2, fresh, err)
	}
	if err := c.a.AddAccessBytes(ctx, e1.ID, 1000); err != nil {
		t.Fatal(err)
	}
	// Anything that tells the listener or the way apart opens a session.
	for name, other := range map[string]store.Access{
		"address":   {RecordingID: "r1", CallID: "c1", UserID: "u1", Username: "alice", Path: store.AccessProxy, RemoteAddr: "192.0.2.2"},
		"path":      {RecordingID: "r1", CallID: "c1", UserID: "u1", Username: "alice", Path: store.AccessLink, RemoteAddr: "192.0.2.1"},
		"user":      {RecordingID: "r1", CallID: "c1", UserID: "u2", Username: "bob", Path: store.AccessProxy, RemoteAddr: "192.0.2.1"},
		"recording": {RecordingID: "r2", CallID: "c1", UserID: "u1", Username: "alice", Path: store.AccessProxy, RemoteAddr: "192.0.2.1"},
		"link":      {RecordingID: "r1", CallID: "c1", UserID: "u1", Username: "alice", Path: store.AccessLink, RemoteAddr: "192.0.2.1", Session: "sig2"},
	} {
		if _, fresh, err := c.a.LogAccess(ctx, other, idle); err != nil || !fresh {
			t.Errorf("%s: fresh=%v %v", name, fresh, err)
		}
	}
	c.clock.Advance(idle + time.Millisecond)
	e3, fresh, err := c.a.LogAccess(ctx, a, idle)
	if err != nil || !fresh || e3.ID == e1.ID {
		t.Fatalf("after the idle window: %+v %v %v", e3, fresh, err)
	}

	byUser, err := c.a.AccessLog(ctx, store.AccessFilter{UserID: "u1", RecordingID: "r1"})
	if err != nil || len(byUser) != 5 || byUser[0].ID != e3.ID || byUser[len(byUser)-1].ID != e1.ID {
		t.Fatalf("by user: %+v %v", byUser, err)
	}
	if first := byUser[len(byUser)-1]; first.Bytes != 1000 || first.Requests != 2 {
		t.Fatalf("first session: %+v", first)
	}
	if l, _ := c.a.AccessLog(ctx, store.AccessFilter{CallID: "c1", Limit: 2}); len(l) != 2 {
		t.Fatalf("page of 2: %d", len(l))
	}
	page2, _ := c.a.AccessLog(ctx, store.AccessFilter{CallID: "c1", Before: e3.ID})
	if len(page2) != 6 {
		t.Fatalf("after cursor: %d entries", len(page2))
	}
	if l, _ := c.b.AccessLog(ctx, store.AccessFilter{}); len(l) != 0 {
		t.Fatalf("other tenant sees %d entries", len(l))
	}
	if _, _, err := c.a.LogAccess(ctx, store.Access{RecordingID: "r1", UserID: "u1", Path: "ftp"}, idle); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad path: %v", err)
	}
}

func TestSearchCallsAndRecordings(t *testing.T) {
	ctx := context.Background()
	c := openClocked(t)
	now := c.clock.Now()
	alice := c.user(t, c.a, "alice", store.RoleRep)
	bob := c.user(t, c.a, "bob", store.RoleRep)
	aliceID, bobID := alice.Principal().UserID(), bob.Principal().UserID()

	a1, ra1 := storedRecording(t, c.a, aliceID, now.Add(-3*time.Hour))
	b1, rb1 := storedRecording(t, c.a, bobID, now.Add(-2*time.Hour))
	a2, ra2 := storedRecording(t, c.a, aliceID, now.Add(-time.Hour))
	live := store.Call{ID: store.NewCallID(), UserID: aliceID, Direction: store.Inbound, Caller: "+1", Callee: "+2", ACallID: "x", InviteAt: now}
	if err := c.a.InsertCall(ctx, live); err != nil {
		t.Fatal(err)
	}
	storedRecording(t, c.b, "", now)

	ids := func(cs []store.Call) (out []string) {
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	for name, tc := range map[string]struct {
		q    store.CallQuery
		want []string
	}{
		"all":       {store.CallQuery{}, []string{live.ID, a2.ID, b1.ID, a1.ID}},
		"alice":     {store.CallQuery{UserID: aliceID}, []string{live.ID, a2.ID, a1.ID}},
		"inbound":   {store.CallQuery{Direction: store.Inbound}, []string{live.ID}},
		"live":      {store.CallQuery{Live: true}, []string{live.ID}},
		"since":     {store.CallQuery{Since: now.Add(-2 * time.Hour)}, []string{live.ID, a2.ID, b1.ID}},
		"until":     {store.CallQuery{Until: now.Add(-2 * time.Hour)}, []string{a1.ID}},
		"window":    {store.CallQuery{Since: now.Add(-150 * time.Minute), Until: now.Add(-30 * time.Minute)}, []string{a2.ID, b1.ID}},
		"page":      {store.CallQuery{Limit: 2}, []string{live.ID, a2.ID}},
		"next page": {store.CallQuery{Before: a2.ID}, []string{b1.ID, a1.ID}},
	} {
		got, err := c.a.SearchCalls(ctx, tc.q)
		if err != nil || !equal(ids(got), tc.want) {
			t.Errorf("%s: %v %v, want %v", name, ids(got), err, tc.want)
		}
	}
	if got, _ := c.b.SearchCalls(ctx, store.CallQuery{UserID: aliceID}); len(got) != 0 {
		t.Fatalf("other tenant finds alice's calls: %v", got)
	}

	rids := func(rs []store.Recording) (out []string) {
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for name, tc := range map[string]struct {
		q    store.RecordingQuery
		want []string
	}{
		"all":         {store.RecordingQuery{}, []string{ra2.ID, rb1.ID, ra1.ID}},
		"alice":       {store.RecordingQuery{UserID: aliceID}, []string{ra2.ID, ra1.ID}},
		"bob":         {store.RecordingQuery{UserID: bobID}, []string{rb1.ID}},
		"alice, call": {store.RecordingQuery{UserID: aliceID, CallID: a1.ID}, []string{ra1.ID}},
		"alice paged": {store.RecordingQuery{UserID: aliceID, Before: ra2.ID}, []string{ra1.ID}},
	} {
		got, err := c.a.SearchRecordings(ctx, tc.q)
		if err != nil || !equal(rids(got), tc.want) {
			t.Errorf("%s: %v %v, want %v", name, rids(got), err, tc.want)
		}
	}
	// A recording whose call record is gone is nobody's own any more.
	if err := c.a.DeleteCallMetadata(ctx, b1.ID, "erasure"); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.a.SearchRecordings(ctx, store.RecordingQuery{UserID: bobID}); len(got) != 0 {
		t.Fatalf("bob still owns %v", rids(got))
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
