package api

import (
	"errors"
	"net/http"

	"github.com/blackbox-gw/blackbox/store"
)

// visibleCall finds a call the caller may see: a rep on an own route sees
// only its own; anyone else's answers 404 like a call that does not exist.
func (q *req) visibleCall(id string) (store.Call, error) {
	c, err := q.sc.Call(q.r.Context(), id)
	if err != nil {
		return store.Call{}, err
	}
	if q.rep() && c.UserID != q.p.UserID() {
		return store.Call{}, errNotFound
	}
	return c, nil
}

// knownCall checks a call id names a call the caller may see. For managers
// and owners a call whose record was deleted is still known by its
// recordings.
func (q *req) knownCall(id string) error {
	_, err := q.visibleCall(id)
	if !errors.Is(err, store.ErrNotFound) || q.rep() {
		return err
	}
	recs, err := q.sc.SearchRecordings(q.r.Context(), store.RecordingQuery{CallID: id, Limit: 1})
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return errNotFound
	}
	return nil
}

// visibleRecording finds a recording the caller may see; a rep's must
// belong to one of its own calls.
func (q *req) visibleRecording(id string) (store.Recording, error) {
	rec, err := q.sc.Recording(q.r.Context(), id)
	if err != nil {
		return store.Recording{}, err
	}
	if q.rep() {
		if _, err := q.visibleCall(rec.CallID); err != nil {
			return store.Recording{}, errNotFound
		}
	}
	return rec, nil
}

// ownerFilter is the user a list is confined to: a rep's own, whatever it
// asked for; for others the optional ?user=.
func (q *req) ownerFilter() (string, error) {
	userID, err := q.userParam()
	if err != nil {
		return "", err
	}
	if q.rep() {
		if userID != "" && userID != q.p.UserID() {
			return "", errorf(http.StatusForbidden, "forbidden", "a rep sees only its own calls and recordings")
		}
		return q.p.UserID(), nil
	}
	return userID, nil
}

func (s *Server) me(q *req) error {
	t, err := q.sc.Tenant(q.r.Context())
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, map[string]string{
		"tenant": t.Name, "tenant_id": t.ID, "user": q.p.Username(), "user_id": q.p.UserID(), "role": string(q.p.Role())})
}

func (s *Server) listCalls(q *req) error {
	cq, limit, err := q.callQuery()
	if err != nil {
		return err
	}
	switch d := q.r.URL.Query().Get("direction"); d {
	case "", string(store.Inbound), string(store.Outbound):
		cq.Direction = store.Direction(d)
	default:
		return errorf(http.StatusBadRequest, "invalid_parameter", "direction %q: want inbound or outbound", d)
	}
	switch v := q.r.URL.Query().Get("live"); v {
	case "", "false":
	case "true":
		cq.Live = true
	default:
		return errorf(http.StatusBadRequest, "invalid_parameter", "live %q: want true or false", v)
	}
	if cq.UserID, err = q.ownerFilter(); err != nil {
		return err
	}
	calls, err := q.sc.SearchCalls(q.r.Context(), cq)
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(calls, limit, ViewCall, callID))
}

// callQuery reads the paging and time window every call list shares.
func (q *req) callQuery() (store.CallQuery, int, error) {
	cursor, limit, err := q.page()
	if err != nil {
		return store.CallQuery{}, 0, err
	}
	since, err := q.timeParam("since")
	if err != nil {
		return store.CallQuery{}, 0, err
	}
	until, err := q.timeParam("until")
	if err != nil {
		return store.CallQuery{}, 0, err
	}
	return store.CallQuery{Since: since, Until: until, Before: cursor, Limit: limit}, limit, nil
}

func (s *Server) liveCalls(q *req) error {
	cq, limit, err := q.callQuery()
	if err != nil {
		return err
	}
	cq.Live = true
	calls, err := q.sc.SearchCalls(q.r.Context(), cq)
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(calls, limit, ViewCall, callID))
}

func (s *Server) getCall(q *req) error {
	c, err := q.visibleCall(q.r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, ViewCall(c))
}

// reasonBody is the body of every deletion and hold: why, in words.
type reasonBody struct {
	Reason string `json:"reason"`
}

func (s *Server) deleteCall(q *req) error {
	var b reasonBody
	if err := q.decode(&b); err != nil {
		return err
	}
	if err := q.sc.DeleteCallMetadata(q.r.Context(), q.r.PathValue("id"), b.Reason); err != nil {
		return err
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) callRecordings(q *req) error {
	id := q.r.PathValue("id")
	if err := q.knownCall(id); err != nil {
		return err
	}
	recs, err := q.sc.SearchRecordings(q.r.Context(), store.RecordingQuery{CallID: id, Limit: 1000})
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(recs, 0, ViewRecording, recordingID))
}

func (s *Server) callConsent(q *req) error {
	id := q.r.PathValue("id")
	if err := q.knownCall(id); err != nil {
		return err
	}
	evs, err := q.sc.ConsentEvents(q.r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(evs, 0, viewConsent, func(e store.ConsentEvent) string { return e.ID }))
}
