package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
)

// newJobs builds the job client of a configuration. serve runs it (with its
// registry, after the recorder registered its upload kind); the CLI only
// lists and retries, and never runs it.
func newJobs(cfg *config.Config, db *store.DB, reg prometheus.Registerer, log *slog.Logger) (*jobs.Client, error) {
	return jobs.New(jobs.Options{
		DB: db, Node: cfg.Node, Workers: cfg.Jobs.Workers, MaxAttempts: cfg.Jobs.MaxAttempts, Lease: cfg.Jobs.Lease,
		Logger: log, Registerer: reg,
	})
}

// openJobs opens the store and a job client for the CLI.
func openJobs(ctx context.Context, env *cli, path string) (*store.DB, *jobs.Client, error) {
	cfg, db, err := openStore(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	jc, err := newJobs(cfg, db, nil, slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, jc, nil
}

// jobJSON is the stable JSON shape of `jobs list --json`.
type jobJSON struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	State       string          `json:"state"`
	Dead        bool            `json:"dead"`
	Tenant      string          `json:"tenant"`
	TenantID    string          `json:"tenant_id"`
	Key         string          `json:"key"`
	Queue       string          `json:"queue"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	AttemptedBy []string        `json:"attempted_by"`
	CreatedAt   time.Time       `json:"created_at"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	AttemptedAt *time.Time      `json:"attempted_at,omitempty"`
	FinalizedAt *time.Time      `json:"finalized_at,omitempty"`
	Errors      int             `json:"errors"`
	LastError   string          `json:"last_error,omitempty"`
	Args        json.RawMessage `json:"args"`
}

func runJobsList(ctx context.Context, env *cli, args []string) error {
	fs := flag.NewFlagSet("jobs list", flag.ContinueOnError)
	var f storeFlags
	f.register(fs, false)
	dead := fs.Bool("dead", false, "only dead-lettered jobs (attempts exhausted or a permanent error)")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 100, "how many jobs, newest first (max 1000)")
	kind := fs.String("kind", "", "only jobs of this kind, e.g. recording.upload")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected %q", errUsage, rest[0])
	}
	db, jc, err := openJobs(ctx, env, f.config)
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := jc.List(ctx, jobs.ListFilter{Dead: *dead, Kind: *kind, Limit: *limit})
	if err != nil {
		return err
	}
	names, err := tenantNames(ctx, db)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]jobJSON, 0, len(list))
		for _, j := range list {
			out = append(out, jobJSON{ID: j.ID, Kind: j.Kind, State: string(j.State), Dead: j.State.Dead(), Tenant: names[j.TenantID],
				TenantID: j.TenantID, Key: j.Key, Queue: j.Queue, Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
				AttemptedBy: append([]string{}, j.AttemptedBy...), CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt,
				AttemptedAt: optTime(j.AttemptedAt), FinalizedAt: optTime(j.FinalizedAt), Errors: j.Errors, LastError: j.LastError, Args: j.Args})
		}
		return writeJSON(env.stdout, out)
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tSTATE\tTENANT\tKEY\tATTEMPT\tQUEUE\tCREATED\tLAST ERROR")
	for _, j := range list {
		state := string(j.State)
		if j.State.Dead() {
			state += " (dead)"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, j.Kind, state, dashIfEmpty(names[j.TenantID]), j.Key,
			j.Attempt, j.MaxAttempts, j.Queue, j.CreatedAt.Format(time.RFC3339), dashIfEmpty(oneLine(j.LastError, 80)))
	}
	return w.Flush()
}

func runJobsRetry(ctx context.Context, env *cli, args []string) error {
	fs := flag.NewFlagSet("jobs retry", flag.ContinueOnError)
	var f storeFlags
	f.register(fs, false)
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("%w: give one job id (blackbox jobs list --dead)", errUsage)
	}
	id, err := strconv.ParseInt(rest[0], 10, 64)
	if err != nil || id <= 0 {
		return fmt.Errorf("%w: job id %q is not a positive number", errUsage, rest[0])
	}
	db, jc, err := openJobs(ctx, env, f.config)
	if err != nil {
		return err
	}
	defer db.Close()
	j, err := jc.Retry(ctx, id)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return fmt.Errorf("no job %d (blackbox jobs list)", id)
	case errors.Is(err, jobs.ErrNotRetryable):
		return fmt.Errorf("job %d is %s: nothing to retry", id, j.State)
	case err != nil:
		return err
	}
	names, err := tenantNames(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "job %d (%s %s, tenant %s) queued: attempt %d of %d runs on queue %s as soon as a worker is free\n",
		j.ID, j.Kind, j.Key, dashIfEmpty(names[j.TenantID]), j.Attempt+1, j.MaxAttempts, j.Queue)
	return nil
}

func tenantNames(ctx context.Context, db *store.DB) (map[string]string, error) {
	ts, err := db.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(ts))
	for _, t := range ts {
		names[t.ID] = t.Name
	}
	return names, nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table row on one line.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-1] + "…"
	}
	return s
}
