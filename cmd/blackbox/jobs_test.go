package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
)

type failingArgs struct{}

func (failingArgs) Kind() string { return "test.failing" }

// deadJob leaves one dead-lettered job of tenant acme in cfg's store, the
// way a node would: a job client runs it until its one attempt fails.
func deadJob(t *testing.T, cfgPath string) int64 {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, cfg.Store.DSN, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := db.AdminScope(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	jc, err := jobs.New(jobs.Options{DB: db, Node: cfg.Node, MaxAttempts: 1, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = jobs.Register(jc, jobs.Kind[failingArgs]{Work: func(context.Context, jobs.Job[failingArgs]) error {
		return errors.New("object store\nunreachable")
	}})
	if err != nil {
		t.Fatal(err)
	}
	in, _, err := jobs.Enqueue(ctx, jc, db.In(p), "rec-42", failingArgs{}, jobs.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- jc.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if j, _ := jc.Get(ctx, in.ID); j.State.Dead() {
			return in.ID
		}
		if time.Now().After(deadline) {
			t.Fatal("job never died")
		}
	}
}

func TestJobsListAndRetry(t *testing.T) {
	cfg := testConfig(t)
	ok := func(args ...string) string {
		t.Helper()
		code, out, errs := blackbox(t, "", append(args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("blackbox %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		return out
	}
	ok("tenant", "add", "acme")
	if out := ok("jobs", "list", "--dead"); strings.Count(out, "\n") != 1 {
		t.Fatalf("empty dead list printed %q", out)
	}
	id := deadJob(t, cfg)
	sid := strconv.FormatInt(id, 10)

	out := ok("jobs", "list", "--dead")
	if !strings.Contains(out, sid+"  ") || !strings.Contains(out, "test.failing") || !strings.Contains(out, "discarded (dead)") ||
		!strings.Contains(out, "acme") || !strings.Contains(out, "rec-42") || !strings.Contains(out, "object store unreachable") {
		t.Fatalf("dead list:\n%s", out)
	}
	var list []jobJSON
	if err := json.Unmarshal([]byte(ok("jobs", "list", "--dead", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id || !list[0].Dead || list[0].Tenant != "acme" || list[0].Key != "rec-42" ||
		list[0].Attempt != 1 || list[0].FinalizedAt == nil || list[0].LastError == "" {
		t.Fatalf("dead list JSON %+v", list)
	}

	if out := ok("jobs", "retry", sid); !strings.Contains(out, "job "+sid+" (test.failing rec-42, tenant acme) queued: attempt 2 of 2") {
		t.Fatalf("retry printed %q", out)
	}
	if out := ok("jobs", "list", "--dead"); strings.Contains(out, "rec-42") {
		t.Fatalf("retried job still dead:\n%s", out)
	}
	if err := json.Unmarshal([]byte(ok("jobs", "list", "--json", "--kind", "test.failing")), &list); err != nil || len(list) != 1 ||
		list[0].State != "available" || list[0].Dead {
		t.Fatalf("after retry: %+v %v", list, err)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"jobs", "retry", "999"}, 1, "no job 999"},
		{[]string{"jobs", "retry", "x"}, 2, "not a positive number"},
		{[]string{"jobs", "retry"}, 2, "give one job id"},
		{[]string{"jobs", "list", "extra"}, 2, "unexpected"},
	} {
		code, _, errs := blackbox(t, "", append(c.args, "--config", cfg)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Fatalf("blackbox %s: exit %d, stderr %q; want %d mentioning %q", strings.Join(c.args, " "), code, errs, c.code, c.want)
		}
	}
}
