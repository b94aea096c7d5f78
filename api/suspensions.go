package api

import (
	"net/http"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// Suspensions stop a user's (or a whole tenant's) outbound calling after an
// anomaly rule of the policy tripped; managers and owners see and lift them.

type suspensionView struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id,omitempty"`
	Username  string     `json:"username,omitempty"`
	Cause     string     `json:"cause"`
	Detail    string     `json:"detail,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	LiftedAt  *time.Time `json:"lifted_at,omitempty"`
	LiftedBy  string     `json:"lifted_by,omitempty"`
}

func viewSuspension(s store.Suspension) suspensionView {
	return suspensionView{ID: s.ID, UserID: s.UserID, Username: s.Username, Cause: s.Cause, Detail: s.Detail,
		CreatedAt: s.CreatedAt.UTC(), LiftedAt: optTime(s.LiftedAt), LiftedBy: s.LiftedBy}
}

func suspensionID(s store.Suspension) string { return s.ID }

// listSuspensions lists those in force, or with ?lifted=true their history
// too; ?user= narrows to one user's.
func (s *Server) listSuspensions(q *req) error {
	if _, err := q.userParam(); err != nil {
		return err
	}
	f := store.SuspensionFilter{Username: q.r.URL.Query().Get("user")}
	switch v := q.r.URL.Query().Get("lifted"); v {
	case "", "false":
	case "true":
		f.Lifted = true
	default:
		return errorf(http.StatusBadRequest, "invalid_parameter", "lifted %q: want true or false", v)
	}
	list, err := q.sc.Suspensions(q.r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(list, 0, viewSuspension, suspensionID))
}

type liftBody struct {
	// Username whose suspensions to lift; empty lifts the tenant's own.
	Username string `json:"username"`
}

// liftSuspensions lifts the suspensions in force of a user, or without a
// username those of the tenant; each lift is audited by the store.
func (s *Server) liftSuspensions(q *req) error {
	var b liftBody
	if err := q.decode(&b); err != nil {
		return err
	}
	lifted, err := q.sc.LiftSuspensions(q.r.Context(), b.Username)
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(lifted, 0, viewSuspension, suspensionID))
}
