package api

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
	"github.com/blackbox-gw/blackbox/store/objects"
)

const day = 24 * time.Hour

func (f *fixture) setRetention(tenant string, days int) {
	f.retentionMu.Lock()
	f.retentionDays[tenant] = days
	f.retentionMu.Unlock()
}

func (f *fixture) retentionSweeper(objs objects.Store, reg prometheus.Registerer) *Retention {
	f.t.Helper()
	r, err := NewRetention(RetentionOptions{DB: f.db, Objects: objs, RetentionDays: f.retention, Now: f.clock.Now,
		Logger: discardLogger(), Registerer: reg})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) objectExists(key string) bool {
	f.t.Helper()
	_, err := f.objs.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, objects.ErrNotFound) {
		f.t.Fatal(err)
	}
	return err == nil
}

func TestRetentionSweep(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.clock.Now()
	f.setRetention("acme", 30)
	f.setRetention("globex", 0) // keeps forever

	old := f.record("ann", now.Add(-40*day), 100)
	old2 := f.record("ben", now.Add(-31*day), 100)
	held := f.record("ann", now.Add(-50*day), 100)
	fresh := f.record("ann", now.Add(-29*day), 100)
	forever := f.record("bea", now.Add(-400*day), 100)
	if w := f.do("otto", "PUT", "/v1/calls/"+held.call.ID+"/hold", map[string]string{"reason": "litigation 17"}); w.Code != 201 {
		t.Fatalf("hold: %d %s", w.Code, w.Body.String())
	}

	reg := prometheus.NewRegistry()
	r := f.retentionSweeper(f.objs, reg)
	res, err := r.Sweep(ctx)
	if err != nil || res != (SweepResult{Tenants: 2, Deleted: 2, Held: 1}) {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	for _, gone := range []recorded{old, old2} {
		if f.objectExists(gone.rec.ObjectKey) {
			t.Errorf("object of %s survived retention", gone.rec.ID)
		}
		if _, err := f.acme.Recording(ctx, gone.rec.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("metadata of %s survived retention: %v", gone.rec.ID, err)
		}
		if w := f.do("otto", "GET", "/v1/recordings/"+gone.rec.ID+"/audio", nil); w.Code != 404 {
			t.Errorf("deleted recording plays: %d", w.Code)
		}
	}
	for _, kept := range []recorded{held, fresh, forever} {
		if !f.objectExists(kept.rec.ObjectKey) {
			t.Errorf("object of %s deleted", kept.rec.ID)
		}
		if _, err := f.scopeOf(map[bool]string{true: "bea", false: "ann"}[kept.rec.ID == forever.rec.ID]).Recording(ctx, kept.rec.ID); err != nil {
			t.Errorf("metadata of %s deleted: %v", kept.rec.ID, err)
		}
	}
	ev, _ := f.acme.AuditEvents(ctx, store.AuditFilter{Action: "recording.delete"})
	if len(ev) != 2 {
		t.Fatalf("%d deletion audit events, want 2", len(ev))
	}
	for _, e := range ev {
		if e.Actor != "system" || e.Details["kind"] != "retention" || e.Details["retention_days"] != float64(30) || e.Details["sha256"] == "" {
			t.Errorf("audit event %+v", e)
		}
	}
	if got := counterValue(r.deleted); got != 2 {
		t.Fatalf("deleted counter %v", got)
	}
	// A second sweep finds nothing more to do.
	if res, err := r.Sweep(ctx); err != nil || res != (SweepResult{Tenants: 2, Held: 1}) {
		t.Fatalf("second sweep: %+v %v", res, err)
	}
	// The owner sees it all.
	info := decodeInto[map[string]any](t, f.do("otto", "GET", "/v1/retention", nil))
	if info["retention_days"] != float64(30) || info["held_past_retention"] != float64(1) || info["active_holds"] != float64(1) || info["keep_forever"] != false {
		t.Fatalf("retention: %v", info)
	}
	// Once released, the held recording goes with the next sweep.
	if w := f.do("otto", "DELETE", "/v1/calls/"+held.call.ID+"/hold", map[string]string{"reason": "case closed"}); w.Code != 200 {
		t.Fatalf("release: %d", w.Code)
	}
	if res, _ := r.Sweep(ctx); res.Deleted != 1 || f.objectExists(held.rec.ObjectKey) {
		t.Fatalf("after release: %+v", res)
	}
}

// A legal hold blocks every deletion, and deleting a call's metadata leaves
// its recording (object and row) in place.
func TestOwnerDeletion(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.record("ann", f.clock.Now(), 100)
	b := f.record("ann", f.clock.Now(), 100)

	if w := f.do("otto", "PUT", "/v1/calls/"+a.call.ID+"/hold", map[string]string{"reason": "subpoena"}); w.Code != 201 {
		t.Fatal(w.Code)
	}
	for _, path := range []string{"/v1/recordings/" + a.rec.ID, "/v1/calls/" + a.call.ID} {
		if w := f.do("otto", "DELETE", path, map[string]string{"reason": "cleanup"}); w.Code != 409 || errorCode(t, w) != "on_hold" {
			t.Errorf("delete %s under hold: %d %s", path, w.Code, w.Body.String())
		}
	}
	if !f.objectExists(a.rec.ObjectKey) {
		t.Fatal("held object deleted")
	}
	if w := f.do("otto", "DELETE", "/v1/recordings/"+b.rec.ID, nil); w.Code != 400 {
		t.Fatalf("deletion without a reason: %d", w.Code)
	}

	// Call metadata goes; the recording stays and still plays.
	if w := f.do("otto", "DELETE", "/v1/calls/"+b.call.ID, map[string]string{"reason": "erasure request 12"}); w.Code != 204 {
		t.Fatalf("delete call: %d %s", w.Code, w.Body.String())
	}
	if w := f.do("otto", "GET", "/v1/calls/"+b.call.ID, nil); w.Code != 404 {
		t.Fatalf("deleted call still there: %d", w.Code)
	}
	if !f.objectExists(b.rec.ObjectKey) {
		t.Fatal("deleting call metadata deleted the recording's object")
	}
	if w := f.do("mia", "GET", "/v1/recordings/"+b.rec.ID+"/audio", nil); w.Code != 200 {
		t.Fatalf("recording of a deleted call: %d", w.Code)
	}
	if w := f.do("mia", "GET", "/v1/calls/"+b.call.ID+"/recordings", nil); w.Code != 200 {
		t.Fatalf("a call known by its recording: %d", w.Code)
	}

	// The owner deletes within policy; an object store outage leaves the
	// deletion begun (no playback), and the sweep finishes it as the owner's.
	fs := &failingStore{Store: f.objs, failDelete: true}
	f.srv.opts.Objects = fs
	if w := f.do("otto", "DELETE", "/v1/recordings/"+b.rec.ID, map[string]string{"reason": "recorded a personal call"}); w.Code != 503 {
		t.Fatalf("delete with storage down: %d %s", w.Code, w.Body.String())
	}
	fs.failDelete = false
	if w := f.do("otto", "GET", "/v1/recordings/"+b.rec.ID+"/audio", nil); w.Code != 404 {
		t.Fatalf("a recording being deleted plays: %d", w.Code)
	}
	if res, err := f.retentionSweeper(f.objs, nil).Sweep(ctx); err != nil || res.Resumed != 1 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	if f.objectExists(b.rec.ObjectKey) {
		t.Fatal("object survived")
	}
	ev, _ := f.acme.AuditEvents(ctx, store.AuditFilter{Action: "recording.delete"})
	if len(ev) != 1 || ev[0].Actor != "user:otto" || ev[0].Details["reason"] != "recorded a personal call" || ev[0].Details["kind"] != "owner" {
		t.Fatalf("audit: %+v", ev)
	}
	ev, _ = f.acme.AuditEvents(ctx, store.AuditFilter{Action: "call.delete"})
	if len(ev) != 1 || ev[0].Actor != "user:otto" || ev[0].Details["reason"] != "erasure request 12" {
		t.Fatalf("call audit: %+v", ev)
	}
}

// Run enqueues each tenant's sweep of the day as a durable job, at once and
// on its ticker; the job runs it once per day; Run stops with its context.
func TestRetentionRun(t *testing.T) {
	f := newFixture(t)
	f.setRetention("acme", 1)
	old := f.record("ann", f.clock.Now().Add(-2*day), 100)
	jc, err := jobs.New(jobs.Options{DB: f.db, Node: "test", PollInterval: 20 * time.Millisecond, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRetention(RetentionOptions{DB: f.db, Objects: f.objs, RetentionDays: f.retention, Now: f.clock.Now,
		Logger: discardLogger(), Interval: 10 * time.Millisecond, Jobs: jc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	jobsDone := make(chan error, 1)
	go func() { jobsDone <- jc.Run(ctx) }()
	defer func() { cancel(); <-jobsDone }()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.objectExists(old.rec.ObjectKey) {
		if time.Now().After(deadline) {
			t.Fatal("Run never swept")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Written fresh while sweeps run, then aged past retention.
	later := f.record("ann", f.clock.Now(), 100)
	f.clock.Advance(2 * day)
	for f.objectExists(later.rec.ObjectKey) {
		if time.Now().After(deadline) {
			t.Fatal("Run swept only once")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run ignored its context")
	}
}
