package api

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// exportPage is how many calls an export reads per query.
const exportPage = 500

type exportRecording struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	SHA256     string `json:"sha256,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

type exportCall struct {
	CallView
	Recordings []exportRecording `json:"recordings"`
}

// exportCalls streams the team's calls with their recordings' hashes, as
// NDJSON (default) or CSV, newest first. Exports are audited: who took what.
func (s *Server) exportCalls(q *req) error {
	cq, _, err := q.callQuery()
	if err != nil {
		return err
	}
	if cq.UserID, err = q.userParam(); err != nil {
		return err
	}
	format := q.r.URL.Query().Get("format")
	switch format {
	case "":
		format = "ndjson"
	case "ndjson", "csv":
	default:
		return errorf(http.StatusBadRequest, "invalid_parameter", "format %q: want ndjson or csv", format)
	}
	ctx := q.r.Context()
	t, err := q.sc.Tenant(ctx)
	if err != nil {
		return err
	}
	if err := q.sc.Audit(ctx, "export.calls", "tenant:"+t.Name, map[string]any{
		"format": format, "user": q.r.URL.Query().Get("user"), "since": q.r.URL.Query().Get("since"), "until": q.r.URL.Query().Get("until")}); err != nil {
		return err
	}
	h := q.w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="calls-`+t.Name+`-`+s.opts.Now().UTC().Format("20060102T150405Z")+`.`+format+`"`)
	var emit func(exportCall) error
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(q.w)
		defer cw.Flush()
		if err := cw.Write([]string{"id", "user_id", "direction", "caller", "callee", "invite_at", "answer_at", "end_at",
			"end_reason", "recording_ids", "recording_sha256"}); err != nil {
			return err
		}
		emit = func(c exportCall) error { return cw.Write(csvRow(c)) }
	} else {
		h.Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(q.w)
		emit = func(c exportCall) error { return enc.Encode(c) }
	}
	cq.Limit = exportPage
	for {
		calls, err := q.sc.SearchCalls(ctx, cq)
		if err != nil {
			// Headers are gone; a cut-off stream is all the client can see.
			s.log.Error("export cut short", "tenant", t.Name, "error", err)
			return nil
		}
		for _, c := range calls {
			recs, err := q.sc.SearchRecordings(ctx, store.RecordingQuery{CallID: c.ID, Limit: 1000})
			if err != nil {
				s.log.Error("export cut short", "tenant", t.Name, "error", err)
				return nil
			}
			ec := exportCall{CallView: ViewCall(c), Recordings: make([]exportRecording, 0, len(recs))}
			for _, r := range recs {
				ec.Recordings = append(ec.Recordings, exportRecording{ID: r.ID, State: string(r.State), SHA256: r.SHA256, DurationMS: r.Duration.Milliseconds()})
			}
			if err := emit(ec); err != nil {
				return nil // the client went away
			}
		}
		if len(calls) < exportPage {
			return nil
		}
		cq.Before = calls[len(calls)-1].ID
	}
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Format(time.RFC3339)
}

func csvRow(c exportCall) []string {
	var ids, sums []string
	for _, r := range c.Recordings {
		ids, sums = append(ids, r.ID), append(sums, r.SHA256)
	}
	return []string{c.ID, c.UserID, c.Direction, cell(c.Caller), cell(c.Callee), c.InviteAt.Format(time.RFC3339),
		csvTime(c.AnswerAt), csvTime(c.EndAt), cell(c.EndReason), strings.Join(ids, ";"), strings.Join(sums, ";")}
}

// cell defuses spreadsheet formulas in values that came from outside (a
// caller ID is whatever the far end sent), leaving phone numbers as they are.
func cell(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '@', '\t', '\r':
		return "'" + v
	case '+', '-':
		if _, err := strconv.ParseUint(v[1:], 10, 64); err != nil {
			return "'" + v
		}
	}
	return v
}
