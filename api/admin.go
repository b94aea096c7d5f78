package api

import (
	"net/http"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// retention shows the tenant's retention period (from the policy) and what
// keeps recordings past it.
func (s *Server) retention(q *req) error {
	ctx := q.r.Context()
	t, err := q.sc.Tenant(ctx)
	if err != nil {
		return err
	}
	days := s.retentionDays(t.Name)
	out := struct {
		RetentionDays    int  `json:"retention_days"`
		KeepForever      bool `json:"keep_forever"`
		HeldPastPeriod   int  `json:"held_past_retention"`
		ActiveHolds      int  `json:"active_holds"`
		PendingDeletions int  `json:"pending_deletions"`
	}{RetentionDays: max(days, 0), KeepForever: days <= 0}
	if days > 0 {
		if out.HeldPastPeriod, err = q.sc.HeldExpiredRecordings(ctx, cutoff(s.opts.Now(), days)); err != nil {
			return err
		}
	}
	holds, err := q.sc.Holds(ctx, store.HoldFilter{})
	if err != nil {
		return err
	}
	pending, err := q.sc.PendingDeletions(ctx)
	if err != nil {
		return err
	}
	out.ActiveHolds, out.PendingDeletions = len(holds), len(pending)
	return writeJSON(q.w, http.StatusOK, out)
}

func (s *Server) retentionDays(tenant string) int {
	if s.opts.RetentionDays == nil {
		return 0
	}
	return s.opts.RetentionDays(tenant)
}

func (s *Server) listAudit(q *req) error {
	_, limit, err := q.page()
	if err != nil {
		return err
	}
	evs, err := q.sc.AuditEvents(q.r.Context(), store.AuditFilter{Action: q.r.URL.Query().Get("action"), Limit: limit})
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(evs, 0, viewAudit, func(e store.AuditEvent) string { return e.ID }))
}

func (s *Server) listUsers(q *req) error {
	us, err := q.sc.Users(q.r.Context())
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(us, 0, viewUser, func(u store.User) string { return u.ID }))
}

type newUserBody struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	CallerID string `json:"caller_id"`
	Password string `json:"password"`
}

func (s *Server) createUser(q *req) error {
	var b newUserBody
	if err := q.decode(&b); err != nil {
		return err
	}
	role, err := store.ParseRole(b.Role)
	if err != nil {
		return err
	}
	u, err := q.sc.CreateUser(q.r.Context(), store.NewUser{Username: b.Username, Role: role, CallerID: b.CallerID,
		Realm: s.opts.SIPRealm, Password: b.Password})
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusCreated, viewUser(u))
}

func (s *Server) listTokens(q *req) error {
	ts, err := q.sc.Tokens(q.r.Context(), store.TokenFilter{Username: q.r.URL.Query().Get("user")})
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(ts, 0, viewToken, func(t store.Token) string { return t.ID }))
}

type newTokenBody struct {
	Username   string `json:"username"`
	Name       string `json:"name"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

// DefaultTokenTTL is a token's lifetime when the request names none.
const DefaultTokenTTL = 30 * 24 * time.Hour

// createToken issues a token; the answer is the only place its secret
// ever appears.
func (s *Server) createToken(q *req) error {
	var b newTokenBody
	if err := q.decode(&b); err != nil {
		return err
	}
	ttl := DefaultTokenTTL
	switch {
	case b.TTLSeconds < 0:
		return errorf(http.StatusBadRequest, "invalid_request", "ttl_seconds must be positive")
	case b.TTLSeconds > 0:
		// Clamped just past the maximum (no overflow); the store refuses it
		// with the limit in its message.
		ttl = time.Duration(min(b.TTLSeconds, int64(store.MaxTokenTTL/time.Second)+1)) * time.Second
	}
	t, secret, err := q.sc.CreateToken(q.r.Context(), store.NewToken{Username: b.Username, Name: b.Name, TTL: ttl})
	if err != nil {
		return err
	}
	v := viewToken(t)
	v.Token = secret
	return writeJSON(q.w, http.StatusCreated, v)
}

func (s *Server) revokeToken(q *req) error {
	t, err := q.sc.RevokeToken(q.r.Context(), q.r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, viewToken(t))
}
