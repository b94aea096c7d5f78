package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/blackbox-gw/blackbox/api"
	"github.com/blackbox-gw/blackbox/store"
)

// callJSON is the stable JSON shape of `calls list --json`: the API's view
// of a call plus what only operators see.
type callJSON struct {
	api.CallView
	ACallID string `json:"a_call_id"`
	BCallID string `json:"b_call_id,omitempty"`
	Node    string `json:"node,omitempty"`
}

func runCallsList(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("calls list")
	asJSON := c.Bool("json", false, "print JSON")
	limit := c.Int("limit", 100, "how many calls, newest first")
	_, scope, err := c.start(ctx, args)
	if err != nil {
		return err
	}
	defer c.close()
	calls, err := scope.Calls(ctx, store.CallFilter{Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]callJSON, 0, len(calls))
		for _, c := range calls {
			out = append(out, callJSON{CallView: api.ViewCall(c), ACallID: c.ACallID, BCallID: c.BCallID, Node: c.Node})
		}
		return writeJSON(env.stdout, out)
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tDIRECTION\tCALLER\tCALLEE\tSTART\tDURATION\tEND\tCODE\tHANGUP BY")
	for _, c := range calls {
		dur := "-"
		if !c.AnswerAt.IsZero() && !c.EndAt.IsZero() {
			dur = c.EndAt.Sub(c.AnswerAt).Round(time.Second).String()
		}
		end := c.EndReason
		if c.EndAt.IsZero() {
			end = "(in progress)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.ID, c.Direction, c.Caller, c.Callee,
			c.InviteAt.Local().Format("2006-01-02 15:04:05"), dur, end, c.ACode, c.HangupBy)
	}
	return w.Flush()
}

func runAuditList(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("audit list")
	asJSON := c.Bool("json", false, "print JSON")
	action := c.String("action", "", "only this action")
	limit := c.Int("limit", 100, "how many events, newest first")
	_, scope, err := c.start(ctx, args)
	if err != nil {
		return err
	}
	defer c.close()
	evs, err := scope.AuditEvents(ctx, store.AuditFilter{Action: *action, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		type ev struct {
			ID      string         `json:"id"`
			Actor   string         `json:"actor"`
			Action  string         `json:"action"`
			Object  string         `json:"object"`
			Details map[string]any `json:"details"`
			At      time.Time      `json:"at"`
		}
		out := make([]ev, 0, len(evs))
		for _, e := range evs {
			out = append(out, ev{e.ID, e.Actor, e.Action, e.Object, e.Details, e.At})
		}
		return writeJSON(env.stdout, out)
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "AT\tACTOR\tACTION\tOBJECT\tDETAILS")
	for _, e := range evs {
		d, _ := json.Marshal(e.Details)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.At.Local().Format(time.RFC3339), e.Actor, e.Action, e.Object, d)
	}
	return w.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// optTime is nil for the zero time, so JSON leaves out what has not happened.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
