package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/blackbox-gw/blackbox/api"
	"github.com/blackbox-gw/blackbox/recorder"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// recordingJSON is the stable JSON shape of `recordings list --json`: the
// API's view of a recording plus what only operators see.
type recordingJSON struct {
	api.RecordingView
	Provider   string `json:"provider"`
	ProviderID string `json:"provider_recording_id"`
	Attempts   int    `json:"attempts"`
	LastError  string `json:"last_error,omitempty"`
	Node       string `json:"node,omitempty"`
}

func runRecordingsList(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("recordings list")
	asJSON := c.Bool("json", false, "print JSON")
	failed := c.Bool("failed", false, "only dead-lettered recordings (upload failed after every attempt)")
	callID := c.String("call", "", "only this call's recordings")
	limit := c.Int("limit", 100, "how many, newest first")
	_, scope, err := c.start(ctx, args)
	if err != nil {
		return err
	}
	defer c.close()
	rs, err := scope.Recordings(ctx, store.RecordingFilter{CallID: *callID, Failed: *failed, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]recordingJSON, 0, len(rs))
		for _, r := range rs {
			out = append(out, recordingJSON{RecordingView: api.ViewRecording(r), Provider: r.Provider, ProviderID: r.ProviderRecordingID,
				Attempts: r.Attempts, LastError: r.LastError, Node: r.Node})
		}
		return writeJSON(env.stdout, out)
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CALL\tRECORDING\tSTATE\tDURATION\tSIZE\tSHA-256\tNOTE")
	for _, r := range rs {
		note := r.LastError
		if r.Truncated {
			note = "truncated " + note
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.CallID, r.ID, r.State, r.Duration.Round(time.Millisecond), r.SizeBytes, r.SHA256, note)
	}
	return w.Flush()
}

// errMismatch makes verify exit non-zero after naming every mismatch.
var errMismatch = errors.New("recordings failed verification")

func runVerify(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("verify")
	callID := c.String("call", "", "verify this call's recordings")
	all := c.Bool("all", false, "verify every stored recording of the tenant")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if (*callID == "") == !*all || (*callID != "" && *all) {
		return fmt.Errorf("%w: give exactly one of --call ID or --all", errUsage)
	}
	cfg, scope, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	db := c.db
	objs, err := objects.Open(ctx, cfg.Objects.URL, objects.Options{SSE: cfg.Objects.SSE, SSEKMSKeyID: cfg.Objects.SSEKMSKeyID})
	if err != nil {
		return err
	}
	if *callID != "" {
		if _, err := scope.Call(ctx, *callID); err != nil {
			return err
		}
	}
	bad, err := recorder.Verify(ctx, db, objs, scope, *callID)
	if err != nil {
		return err
	}
	for _, m := range bad {
		detail := fmt.Sprintf("stored sha256 %s, object sha256 %s", m.Want, m.Got)
		if m.Err != nil {
			detail = m.Err.Error()
		}
		fmt.Fprintf(env.stderr, "MISMATCH call %s recording %s object %s: %s\n", m.CallID, m.RecordingID, m.Key, detail)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %d", errMismatch, len(bad))
	}
	fmt.Fprintln(env.stdout, "all recordings verified: stored SHA-256 matches every object")
	return nil
}
