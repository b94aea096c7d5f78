package api

import (
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// The JSON shapes of the API. Times are RFC 3339 in UTC; a time that has
// not happened is absent. Storage internals (object keys, spool paths,
// nodes) never leave Blackbox.

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// CallView is a call as the API shows it (the CLI adds operator fields).
type CallView struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id,omitempty"`
	Direction string     `json:"direction"`
	Caller    string     `json:"caller"`
	Callee    string     `json:"callee"`
	TrunkID   string     `json:"trunk_id,omitempty"`
	InviteAt  time.Time  `json:"invite_at"`
	RingingAt *time.Time `json:"ringing_at,omitempty"`
	AnswerAt  *time.Time `json:"answer_at,omitempty"`
	EndAt     *time.Time `json:"end_at,omitempty"`
	EndReason string     `json:"end_reason,omitempty"`
	ACode     int        `json:"a_code,omitempty"`
	BCode     int        `json:"b_code,omitempty"`
	HangupBy  string     `json:"hangup_by,omitempty"`
}

// ViewCall is the API's view of c.
func ViewCall(c store.Call) CallView {
	return CallView{ID: c.ID, UserID: c.UserID, Direction: string(c.Direction), Caller: c.Caller, Callee: c.Callee, TrunkID: c.TrunkID,
		InviteAt: c.InviteAt.UTC(), RingingAt: optTime(c.RingingAt), AnswerAt: optTime(c.AnswerAt), EndAt: optTime(c.EndAt),
		EndReason: c.EndReason, ACode: c.ACode, BCode: c.BCode, HangupBy: c.HangupBy}
}

func callID(c store.Call) string { return c.ID }

// RecordingView is a recording as the API shows it (the CLI adds operator
// fields).
type RecordingView struct {
	ID          string     `json:"id"`
	CallID      string     `json:"call_id"`
	State       string     `json:"state"`
	Truncated   bool       `json:"truncated"`
	SHA256      string     `json:"sha256,omitempty"`
	AudioSHA256 string     `json:"audio_sha256,omitempty"`
	SizeBytes   int64      `json:"size_bytes"`
	DurationMS  int64      `json:"duration_ms"`
	Channels    []string   `json:"channels"`
	Codec       string     `json:"codec"`
	SampleRate  int        `json:"sample_rate"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	StoredAt    *time.Time `json:"stored_at,omitempty"`
	AudioPath   string     `json:"audio_path,omitempty"`
}

// ViewRecording is the API's view of r.
func ViewRecording(r store.Recording) RecordingView {
	v := RecordingView{ID: r.ID, CallID: r.CallID, State: string(r.State), Truncated: r.Truncated, SHA256: r.SHA256,
		AudioSHA256: r.AudioSHA256, SizeBytes: r.SizeBytes, DurationMS: r.Duration.Milliseconds(), Channels: r.Channels,
		Codec: r.Codec, SampleRate: r.SampleRate, StartedAt: r.StartedAt.UTC(), EndedAt: optTime(r.EndedAt), StoredAt: optTime(r.StoredAt)}
	if r.State == store.RecordingStored {
		v.AudioPath = "/v1/recordings/" + r.ID + "/audio"
	}
	return v
}

func recordingID(r store.Recording) string { return r.ID }

type consentView struct {
	ID            string     `json:"id"`
	CallID        string     `json:"call_id"`
	Party         string     `json:"party"`
	PromptID      string     `json:"prompt_id"`
	PromptVersion string     `json:"prompt_version"`
	Mode          string     `json:"mode"`
	Result        string     `json:"result"`
	Digit         string     `json:"digit,omitempty"`
	StartedAt     time.Time  `json:"started_at"`
	EndedAt       *time.Time `json:"ended_at,omitempty"`
}

func viewConsent(e store.ConsentEvent) consentView {
	return consentView{ID: e.ID, CallID: e.CallID, Party: string(e.Party), PromptID: e.PromptID, PromptVersion: e.PromptVersion,
		Mode: string(e.Mode), Result: string(e.Result), Digit: e.Digit, StartedAt: e.StartedAt.UTC(), EndedAt: optTime(e.EndedAt)}
}

type accessView struct {
	ID          string    `json:"id"`
	CallID      string    `json:"call_id"`
	RecordingID string    `json:"recording_id"`
	UserID      string    `json:"user_id"`
	Username    string    `json:"username"`
	Path        string    `json:"path"`
	RemoteAddr  string    `json:"remote_addr"`
	UserAgent   string    `json:"user_agent,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	LastAt      time.Time `json:"last_at"`
	Requests    int64     `json:"requests"`
	Bytes       int64     `json:"bytes"`
}

func viewAccess(e store.AccessEntry) accessView {
	return accessView{ID: e.ID, CallID: e.CallID, RecordingID: e.RecordingID, UserID: e.UserID, Username: e.Username, Path: string(e.Path),
		RemoteAddr: e.RemoteAddr, UserAgent: e.UserAgent, StartedAt: e.StartedAt.UTC(), LastAt: e.LastAt.UTC(), Requests: e.Requests, Bytes: e.Bytes}
}

func accessID(e store.AccessEntry) string { return e.ID }

type holdView struct {
	ID            string     `json:"id"`
	CallID        string     `json:"call_id"`
	Reason        string     `json:"reason"`
	PlacedBy      string     `json:"placed_by"`
	PlacedAt      time.Time  `json:"placed_at"`
	ReleasedAt    *time.Time `json:"released_at,omitempty"`
	ReleasedBy    string     `json:"released_by,omitempty"`
	ReleaseReason string     `json:"release_reason,omitempty"`
}

func viewHold(h store.Hold) holdView {
	return holdView{ID: h.ID, CallID: h.CallID, Reason: h.Reason, PlacedBy: h.PlacedBy, PlacedAt: h.PlacedAt.UTC(),
		ReleasedAt: optTime(h.ReleasedAt), ReleasedBy: h.ReleasedBy, ReleaseReason: h.ReleaseReason}
}

type userView struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Role      string    `json:"role"`
	CallerID  string    `json:"caller_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func viewUser(u store.User) userView {
	return userView{ID: u.ID, Username: u.Username, Role: string(u.Role), CallerID: u.CallerID, CreatedAt: u.CreatedAt.UTC()}
}

type tokenView struct {
	ID         string     `json:"id"`
	Username   string     `json:"username"`
	Name       string     `json:"name,omitempty"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// Token is the secret, present only in the answer that created it.
	Token string `json:"token,omitempty"`
}

func viewToken(t store.Token) tokenView {
	return tokenView{ID: t.ID, Username: t.Username, Name: t.Name, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt.UTC(),
		ExpiresAt: t.ExpiresAt.UTC(), RevokedAt: optTime(t.RevokedAt), RevokedBy: t.RevokedBy, LastUsedAt: optTime(t.LastUsedAt)}
}

type auditView struct {
	ID      string         `json:"id"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Object  string         `json:"object"`
	Details map[string]any `json:"details"`
	At      time.Time      `json:"at"`
}

func viewAudit(e store.AuditEvent) auditView {
	return auditView{ID: e.ID, Actor: e.Actor, Action: e.Action, Object: e.Object, Details: e.Details, At: e.At.UTC()}
}
