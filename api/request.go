package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// req is one request in flight: who asked (zero on public routes) and the
// tenant scope every read goes through.
type req struct {
	w  http.ResponseWriter
	r  *http.Request
	rt route
	p  store.Principal
	sc *store.Scope
}

// rep reports whether the caller sees only its own objects here.
func (q *req) rep() bool { return q.rt.own && q.p.Role() == store.RoleRep }

// handler authenticates, checks the role against the table, and runs the
// route; its error becomes the JSON error response.
func (s *Server) handler(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := &req{w: w, r: r, rt: rt}
		if !rt.public {
			p, err := s.authenticate(r)
			if err != nil {
				s.fail(q, err)
				return
			}
			if !rt.allows(p.Role()) {
				s.fail(q, errorf(http.StatusForbidden, "forbidden", "the %s role may not %s %s", p.Role(), rt.method, rt.path))
				return
			}
			q.p, q.sc = p, s.opts.DB.In(p)
		}
		if err := rt.handle(s, q); err != nil {
			s.fail(q, err)
		}
	})
}

// authenticate takes the principal from the bearer token and from nothing
// else the request carries.
func (s *Server) authenticate(r *http.Request) (store.Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return store.Principal{}, errUnauthenticated("an API token is required: Authorization: Bearer bbk_...")
	}
	p, err := s.opts.DB.TokenPrincipal(r.Context(), strings.TrimSpace(token))
	if errors.Is(err, store.ErrBadToken) {
		return store.Principal{}, errUnauthenticated("the API token is invalid, expired or revoked")
	}
	if err != nil {
		return store.Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	return p, nil
}

// maxBody bounds JSON request bodies: they are small commands.
const maxBody = 64 << 10

// decode reads an optional JSON body into v; unknown fields are refused so
// a misspelt field is an error, not a silent default.
func (q *req) decode(v any) error {
	body := http.MaxBytesReader(q.w, q.r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return errorf(http.StatusBadRequest, "invalid_json", "request body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid_json", "request body: one JSON object expected")
	}
	return nil
}

// page reads the cursor and limit of a list request.
func (q *req) page() (cursor string, limit int, err error) {
	cursor = q.r.URL.Query().Get("cursor")
	limit = 100
	if v := q.r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return "", 0, errorf(http.StatusBadRequest, "invalid_parameter", "limit %q: want 1..1000", v)
		}
		limit = n
	}
	if len(cursor) > 64 {
		return "", 0, errorf(http.StatusBadRequest, "invalid_parameter", "cursor: not one this API returned")
	}
	return cursor, limit, nil
}

// timeParam parses an optional RFC 3339 query parameter.
func (q *req) timeParam(name string) (time.Time, error) {
	v := q.r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, "invalid_parameter", "%s %q: want RFC 3339, e.g. 2025-06-01T00:00:00Z", name, v)
	}
	return t, nil
}

// userParam resolves an optional ?user=USERNAME to a user id of the tenant.
func (q *req) userParam() (string, error) {
	name := q.r.URL.Query().Get("user")
	if name == "" {
		return "", nil
	}
	u, err := q.sc.User(q.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return "", errorf(http.StatusBadRequest, "unknown_user", "no user %q in this tenant", name)
	}
	return u.ID, err
}

// list is the shape of every list response. NextCursor is set when the
// page is full: pass it as ?cursor= for the next page.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func newList[T, S any](items []S, limit int, conv func(S) T, id func(S) string) list[T] {
	out := list[T]{Items: make([]T, 0, len(items))}
	for _, it := range items {
		out.Items = append(out.Items, conv(it))
	}
	if len(items) == limit && limit > 0 {
		out.NextCursor = id(items[len(items)-1])
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
