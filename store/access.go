package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
)

// This file holds who listened to what (the playback access log) and the
// scoped read views the API lists through (who may see what).

// AccessPath is how a recording was played.
type AccessPath string

// Playback paths.
const (
	AccessProxy AccessPath = "proxy" // streamed through the API with a token
	AccessLink  AccessPath = "link"  // streamed through a signed link
)

// Access is one playback request.
type Access struct {
	RecordingID string
	CallID      string
	UserID      string // the listener (for a link: the user who made it)
	Username    string
	Path        AccessPath
	RemoteAddr  string
	UserAgent   string
	// Session tells listening sessions apart beyond listener, recording,
	// path and address: a signed link's signature, so each link is its own
	// session.
	Session string
}

// AccessEntry is one listening session: every request of one listener on
// one recording by one path from one address, no more than the idle window
// apart.
type AccessEntry struct {
	ID          string
	TenantID    string
	CallID      string
	RecordingID string
	UserID      string
	Username    string
	Path        AccessPath
	RemoteAddr  string
	UserAgent   string
	StartedAt   time.Time
	LastAt      time.Time
	Requests    int64
	Bytes       int64
}

const accessCols = `id, tenant_id, call_id, recording_id, user_id, username, path, remote_addr, user_agent,
	started_at, last_at, requests, bytes`

func scanAccess(r row) (AccessEntry, error) {
	var e AccessEntry
	var path string
	var started, last int64
	err := r.Scan(&e.ID, &e.TenantID, &e.CallID, &e.RecordingID, &e.UserID, &e.Username, &path, &e.RemoteAddr, &e.UserAgent,
		&started, &last, &e.Requests, &e.Bytes)
	e.Path, e.StartedAt, e.LastAt = AccessPath(path), fromMS(started), fromMS(last)
	return e, err
}

func (a Access) sessionKey() string {
	h := sha256.New()
	for _, f := range []string{string(a.Path), a.UserID, a.RecordingID, a.RemoteAddr, a.Session} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// LogAccess records a playback request before any audio is sent. It joins
// the listener's session when its last request is at most idle ago (fresh
// false) and opens a new entry otherwise (fresh true). Two nodes serving
// the same session at once still write one entry.
func (s *Scope) LogAccess(ctx context.Context, a Access, idle time.Duration) (AccessEntry, bool, error) {
	switch {
	case a.RecordingID == "" || a.UserID == "":
		return AccessEntry{}, false, invalidf("access needs a recording and a user")
	case a.Path != AccessProxy && a.Path != AccessLink:
		return AccessEntry{}, false, invalidf("access path %q", a.Path)
	}
	key := a.sessionKey()
	now := ms(s.db.now())
	var (
		e     AccessEntry
		fresh bool
	)
	err := s.write(ctx, func(q querier) error {
		var seq, last int64
		var id string
		err := q.QueryRow(ctx, `SELECT id, seq, last_at FROM access_log WHERE tenant_id = $1 AND session_key = $2 ORDER BY seq DESC LIMIT 1`,
			s.p.tenantID, key).Scan(&id, &seq, &last)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case now-last <= idle.Milliseconds():
			return s.touchAccess(ctx, q, key, seq, now, &e)
		}
		seq++
		n, err := q.Exec(ctx, `INSERT INTO access_log (id, tenant_id, session_key, seq, call_id, recording_id, user_id, username, path,
			remote_addr, user_agent, started_at, last_at, requests, bytes)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, 0)
			ON CONFLICT (tenant_id, session_key, seq) DO NOTHING`,
			newID(), s.p.tenantID, key, seq, a.CallID, a.RecordingID, a.UserID, a.Username, string(a.Path), a.RemoteAddr, a.UserAgent, now, now)
		if err != nil {
			return err
		}
		if n == 0 { // another node opened this session a moment ago
			return s.touchAccess(ctx, q, key, seq, now, &e)
		}
		fresh = true
		e, err = scanAccess(q.QueryRow(ctx, `SELECT `+accessCols+` FROM access_log WHERE tenant_id = $1 AND session_key = $2 AND seq = $3`,
			s.p.tenantID, key, seq))
		return err
	})
	if err != nil {
		return AccessEntry{}, false, fmt.Errorf("log access to recording %s: %w", a.RecordingID, err)
	}
	return e, fresh, nil
}

func (s *Scope) touchAccess(ctx context.Context, q querier, key string, seq, now int64, e *AccessEntry) error {
	if _, err := q.Exec(ctx, `UPDATE access_log SET requests = requests + 1, last_at = CASE WHEN last_at > $4 THEN last_at ELSE $4 END
		WHERE tenant_id = $1 AND session_key = $2 AND seq = $3`, s.p.tenantID, key, seq, now); err != nil {
		return err
	}
	var err error
	*e, err = scanAccess(q.QueryRow(ctx, `SELECT `+accessCols+` FROM access_log WHERE tenant_id = $1 AND session_key = $2 AND seq = $3`,
		s.p.tenantID, key, seq))
	return err
}

// AddAccessBytes counts audio bytes sent in a session, once they are sent.
func (s *Scope) AddAccessBytes(ctx context.Context, entryID string, n int64) error {
	if n <= 0 {
		return nil
	}
	err := s.write(ctx, func(q querier) error {
		_, err := q.Exec(ctx, `UPDATE access_log SET bytes = bytes + $3 WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, entryID, n)
		return err
	})
	if err != nil {
		return fmt.Errorf("count bytes of access %s: %w", entryID, err)
	}
	return nil
}

// AccessFilter narrows AccessLog. Before is a cursor: the id of the last
// entry of the previous page.
type AccessFilter struct {
	CallID      string
	UserID      string
	RecordingID string
	Before      string
	Limit       int // default 100, max 1000
}

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}

// AccessLog lists the tenant's listening sessions, newest first (managers
// and owners).
func (s *Scope) AccessLog(ctx context.Context, f AccessFilter) ([]AccessEntry, error) {
	if err := s.require(RoleManager, "read access log"); err != nil {
		return nil, err
	}
	var out []AccessEntry
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanAccess, `SELECT `+accessCols+` FROM access_log
			WHERE tenant_id = $1 AND ($2 = '' OR call_id = $2) AND ($3 = '' OR user_id = $3) AND ($4 = '' OR recording_id = $4)
			AND ($5 = '' OR id < $5) ORDER BY id DESC LIMIT $6`,
			s.p.tenantID, f.CallID, f.UserID, f.RecordingID, f.Before, clampLimit(f.Limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return out, nil
}

// CallQuery narrows SearchCalls. Before is a cursor: the id of the last
// call of the previous page (ids are time-ordered).
type CallQuery struct {
	UserID    string
	Direction Direction // "" for both
	Since     time.Time // invited at or after; zero for no bound
	Until     time.Time // invited before; zero for no bound
	Live      bool      // only calls not ended yet
	Before    string
	Limit     int // default 100, max 1000
}

// SearchCalls lists the tenant's calls matching q, newest first.
func (s *Scope) SearchCalls(ctx context.Context, cq CallQuery) ([]Call, error) {
	// No upper bound is the largest time rather than a 0 sentinel: a
	// parameter compared with both 0 and a BIGINT column would be typed
	// int4 by Postgres.
	until := int64(math.MaxInt64)
	if !cq.Until.IsZero() {
		until = ms(cq.Until)
	}
	var out []Call
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanCall, `SELECT `+callCols+` FROM calls
			WHERE tenant_id = $1 AND ($2 = '' OR user_id = $2) AND ($3 = '' OR direction = $3)
			AND invite_at >= $4 AND invite_at < $5 AND ($6 = 0 OR end_at = 0) AND ($7 = '' OR id < $7)
			ORDER BY id DESC LIMIT $8`,
			s.p.tenantID, cq.UserID, string(cq.Direction), ms(cq.Since), until, boolInt(cq.Live), cq.Before, clampLimit(cq.Limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("search calls: %w", err)
	}
	return out, nil
}

// RecordingQuery narrows SearchRecordings.
type RecordingQuery struct {
	UserID string // only recordings of this user's calls
	CallID string
	Before string // cursor: the last id of the previous page
	Limit  int    // default 100, max 1000
}

// SearchRecordings lists the tenant's recordings, newest first. With
// UserID it follows each recording's call to its user, so a recording whose
// call record was deleted belongs to nobody's own list.
func (s *Scope) SearchRecordings(ctx context.Context, rq RecordingQuery) ([]Recording, error) {
	var out []Recording
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanRecording, `SELECT `+recordingCols+` FROM recordings
			WHERE tenant_id = $1 AND ($2 = '' OR call_id IN (SELECT id FROM calls WHERE tenant_id = $1 AND user_id = $2))
			AND ($3 = '' OR call_id = $3) AND ($4 = '' OR id < $4) ORDER BY id DESC LIMIT $5`,
			s.p.tenantID, rq.UserID, rq.CallID, rq.Before, clampLimit(rq.Limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("search recordings: %w", err)
	}
	return out, nil
}
