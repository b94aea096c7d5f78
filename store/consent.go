package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ConsentParty is who heard a consent prompt.
type ConsentParty string

// Consent parties.
const (
	PartyCallee ConsentParty = "callee"
	PartyCaller ConsentParty = "caller"
)

// ConsentMode is how consent was sought.
type ConsentMode string

// Consent modes: a notice only, or a notice that asks for a key press.
const (
	ConsentAnnounce     ConsentMode = "announce"
	ConsentAnnounceDTMF ConsentMode = "announce_dtmf"
)

// ConsentResult is how a consent prompt ended.
type ConsentResult string

// Consent results.
const (
	ConsentPlayed             ConsentResult = "played"
	ConsentAccepted           ConsentResult = "accepted"
	ConsentDeclined           ConsentResult = "declined"
	ConsentTimeout            ConsentResult = "timeout"
	ConsentHangupDuringPrompt ConsentResult = "hangup_during_prompt"
	ConsentFailed             ConsentResult = "failed"
)

// ConsentEvent is the proof of one consent prompt: which exact audio a party
// heard (PromptVersion is "label:sha256-of-the-audio") and what happened.
type ConsentEvent struct {
	ID            string
	TenantID      string
	CallID        string
	Party         ConsentParty
	PromptID      string
	PromptVersion string
	Mode          ConsentMode
	Result        ConsentResult
	Digit         string // the key pressed, for accepted or declined
	StartedAt     time.Time
	EndedAt       time.Time
}

var (
	promptVersionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}:[0-9a-f]{64}$`)
	dtmfDigitRe     = regexp.MustCompile(`^[0-9*#A-D]$`)
)

// PromptVersion builds the version string of a prompt from its label and the
// hex SHA-256 of its audio.
func PromptVersion(label, audioSHA256 string) string {
	return label + ":" + strings.ToLower(audioSHA256)
}

func (e ConsentEvent) validate() error {
	switch {
	case e.CallID == "":
		return invalidf("consent call id is required")
	case e.PromptID == "":
		return invalidf("consent prompt id is required")
	case !promptVersionRe.MatchString(e.PromptVersion):
		return invalidf("consent prompt version %q: want label:sha256-hex", e.PromptVersion)
	case e.StartedAt.IsZero():
		return invalidf("consent start time is required")
	case !e.EndedAt.IsZero() && e.EndedAt.Before(e.StartedAt):
		return invalidf("consent ends before it starts")
	}
	switch e.Party {
	case PartyCallee, PartyCaller:
	default:
		return invalidf("consent party %q: want callee or caller", e.Party)
	}
	var results []ConsentResult
	switch e.Mode {
	case ConsentAnnounce:
		results = []ConsentResult{ConsentPlayed, ConsentHangupDuringPrompt, ConsentFailed}
	case ConsentAnnounceDTMF:
		results = []ConsentResult{ConsentAccepted, ConsentDeclined, ConsentTimeout, ConsentHangupDuringPrompt, ConsentFailed}
	default:
		return invalidf("consent mode %q: want announce or announce_dtmf", e.Mode)
	}
	ok := false
	for _, r := range results {
		ok = ok || r == e.Result
	}
	if !ok {
		return invalidf("consent result %q is not a result of mode %s", e.Result, e.Mode)
	}
	keyed := e.Result == ConsentAccepted || e.Result == ConsentDeclined
	switch {
	case keyed && !dtmfDigitRe.MatchString(e.Digit):
		return invalidf("consent digit %q: an %s result needs the key pressed", e.Digit, e.Result)
	case !keyed && e.Digit != "":
		return invalidf("consent digit %q given for result %s", e.Digit, e.Result)
	}
	return nil
}

const consentCols = `id, tenant_id, call_id, party, prompt_id, prompt_version, mode, result, digit, started_at, ended_at`

func scanConsent(r row) (ConsentEvent, error) {
	var e ConsentEvent
	var party, mode, result string
	var started, ended int64
	err := r.Scan(&e.ID, &e.TenantID, &e.CallID, &party, &e.PromptID, &e.PromptVersion, &mode, &result, &e.Digit, &started, &ended)
	e.Party, e.Mode, e.Result = ConsentParty(party), ConsentMode(mode), ConsentResult(result)
	e.StartedAt, e.EndedAt = fromMS(started), fromMS(ended)
	return e, err
}

// RecordConsent appends a consent event to the tenant's record.
func (s *Scope) RecordConsent(ctx context.Context, e ConsentEvent) (ConsentEvent, error) {
	if err := e.validate(); err != nil {
		return ConsentEvent{}, err
	}
	e.ID, e.TenantID = newID(), s.p.tenantID
	e.StartedAt, e.EndedAt = fromMS(ms(e.StartedAt)), fromMS(ms(e.EndedAt))
	err := s.write(ctx, func(q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO consent_events (`+consentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			e.ID, e.TenantID, e.CallID, string(e.Party), e.PromptID, e.PromptVersion, string(e.Mode), string(e.Result), e.Digit,
			ms(e.StartedAt), ms(e.EndedAt))
		return err
	})
	if err != nil {
		return ConsentEvent{}, fmt.Errorf("record consent for call %s: %w", e.CallID, err)
	}
	return e, nil
}

// ConsentEvents lists a call's consent events in the order they started.
func (s *Scope) ConsentEvents(ctx context.Context, callID string) ([]ConsentEvent, error) {
	var out []ConsentEvent
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanConsent, `SELECT `+consentCols+` FROM consent_events
			WHERE tenant_id = $1 AND call_id = $2 ORDER BY started_at, id`, s.p.tenantID, callID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("consent events of call %s: %w", callID, err)
	}
	return out, nil
}
