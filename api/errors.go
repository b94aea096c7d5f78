package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// Error is the body of every error response:
// {"error": {"code": "not_found", "message": "..."}}. Codes are stable;
// messages are for people.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func errUnauthenticated(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: msg}
}

var errNotFound = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found"}

// classify turns any error into the response it deserves. Store errors a
// caller caused keep their message; anything else is an internal error
// whose details go to the log only.
func classify(err error) (*Error, bool) {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e, false
	case errors.Is(err, store.ErrNotFound), errors.Is(err, objects.ErrNotFound):
		return errNotFound, false
	case errors.Is(err, store.ErrNotPermitted):
		return errorf(http.StatusForbidden, "forbidden", "%v", err), false
	case errors.Is(err, store.ErrOnHold):
		return errorf(http.StatusConflict, "on_hold", "%v", err), false
	case errors.Is(err, store.ErrInvalid):
		return errorf(http.StatusBadRequest, "invalid_request", "%v", err), false
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "%v", err), false
	case errors.As(err, new(storageError)):
		return errorf(http.StatusServiceUnavailable, "storage_unavailable", "object storage is unavailable; retry later"), true
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return errorf(499, "canceled", "request canceled"), false
	}
	return errorf(http.StatusInternalServerError, "internal", "internal error; see the server log"), true
}

// fail answers err, logging what the client is not told.
func (s *Server) fail(q *req, err error) {
	e, internal := classify(err)
	if internal {
		s.log.Error("api request failed", "route", q.rt.pattern(), "actor", q.p.Actor(), "error", err)
	}
	if e.Status == http.StatusUnauthorized {
		q.w.Header().Set("WWW-Authenticate", `Bearer realm="blackbox"`)
	}
	writeError(q.w, e)
}

func writeError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	// An error replaces whatever a half-prepared response had set.
	for _, k := range []string{"Content-Disposition", "Accept-Ranges", "ETag", "Repr-Digest", "Content-Length"} {
		h.Del(k)
	}
	if e.Status != http.StatusRequestedRangeNotSatisfiable { // its Content-Range gives the size
		h.Del("Content-Range")
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Error *Error `json:"error"`
	}{e})
}
