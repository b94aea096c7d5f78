package api

import (
	"net/http"

	"github.com/blackbox-gw/blackbox/store"
)

func (s *Server) listRecordings(q *req) error {
	cursor, limit, err := q.page()
	if err != nil {
		return err
	}
	userID, err := q.ownerFilter()
	if err != nil {
		return err
	}
	recs, err := q.sc.SearchRecordings(q.r.Context(), store.RecordingQuery{
		UserID: userID, CallID: q.r.URL.Query().Get("call"), Before: cursor, Limit: limit})
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(recs, limit, ViewRecording, recordingID))
}

func (s *Server) getRecording(q *req) error {
	rec, err := q.visibleRecording(q.r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, ViewRecording(rec))
}

// deleteRecording is an owner's deletion within policy: refused under a
// legal hold, recorded with who and why. The object goes first, then the
// metadata; if the object store fails in between, the deletion stays begun
// and the next retention sweep completes it.
func (s *Server) deleteRecording(q *req) error {
	var b reasonBody
	if err := q.decode(&b); err != nil {
		return err
	}
	err := deleteRecording(q.r.Context(), s.opts.Objects, q.sc, q.r.PathValue("id"),
		store.DeletionRequest{Kind: store.DeleteByOwner, Reason: b.Reason})
	if err != nil {
		return err
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}
