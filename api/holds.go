package api

import (
	"net/http"

	"github.com/blackbox-gw/blackbox/store"
)

func (s *Server) placeHold(q *req) error {
	var b reasonBody
	if err := q.decode(&b); err != nil {
		return err
	}
	h, err := q.sc.PlaceHold(q.r.Context(), q.r.PathValue("id"), b.Reason)
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusCreated, viewHold(h))
}

func (s *Server) releaseHold(q *req) error {
	var b reasonBody
	if err := q.decode(&b); err != nil {
		return err
	}
	h, err := q.sc.ReleaseHold(q.r.Context(), q.r.PathValue("id"), b.Reason)
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, viewHold(h))
}

// listHolds lists holds in force, or with ?released=true their history too.
func (s *Server) listHolds(q *req) error {
	f := store.HoldFilter{CallID: q.r.URL.Query().Get("call")}
	switch v := q.r.URL.Query().Get("released"); v {
	case "", "false":
	case "true":
		f.Released = true
	default:
		return errorf(http.StatusBadRequest, "invalid_parameter", "released %q: want true or false", v)
	}
	hs, err := q.sc.Holds(q.r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(hs, 0, viewHold, func(h store.Hold) string { return h.ID }))
}
