package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// objSet is what a matrix request aims at: objects belonging to one rep.
type objSet struct {
	user   store.User
	token  string // id of a token of the user
	r      recorded
	live   store.Call // not ended
	held   store.Call // under legal hold
	access store.AccessEntry
	marker string // object of an audit event of the tenant
	// suspension is the id of a suspension in force of the user (each
	// objSet lifts the previous one of its user first).
	suspension string
}

// objectsOf creates a fresh set of username's objects.
func (f *fixture) objectsOf(username string) objSet {
	f.t.Helper()
	ctx := context.Background()
	sc := f.scopeOf(username)
	o := objSet{user: f.users[username], r: f.record(username, f.clock.Now().Add(-time.Hour), 800)}
	o.live = store.Call{ID: store.NewCallID(), UserID: o.user.ID, Direction: store.Inbound, Caller: "+14155550111", Callee: "+14155550100",
		ACallID: "live-" + store.NewCallID(), InviteAt: f.clock.Now()}
	o.held = store.Call{ID: store.NewCallID(), UserID: o.user.ID, Direction: store.Outbound, Caller: "+14155550100", Callee: "+14155550122",
		ACallID: "held-" + store.NewCallID(), InviteAt: f.clock.Now()}
	for _, c := range []store.Call{o.live, o.held} {
		if err := sc.InsertCall(ctx, c); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := sc.PlaceHold(ctx, o.held.ID, "litigation"); err != nil {
		f.t.Fatal(err)
	}
	if _, err := sc.RecordConsent(ctx, store.ConsentEvent{CallID: o.r.call.ID, Party: store.PartyCallee, PromptID: "consent-en",
		PromptVersion: store.PromptVersion("v1", strings.Repeat("ab", 32)), Mode: store.ConsentAnnounce, Result: store.ConsentPlayed,
		StartedAt: o.r.call.AnswerAt}); err != nil {
		f.t.Fatal(err)
	}
	tok, _, err := sc.CreateToken(ctx, store.NewToken{Username: username, Name: "matrix", TTL: time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	o.token = tok.ID
	if o.access, _, err = sc.LogAccess(ctx, store.Access{RecordingID: o.r.rec.ID, CallID: o.r.call.ID, UserID: o.user.ID,
		Username: username, Path: store.AccessProxy, RemoteAddr: "198.51.100.1"}, time.Minute); err != nil {
		f.t.Fatal(err)
	}
	o.suspension = f.suspend(username)
	o.marker = "marker:" + store.NewCallID()
	if err := sc.Audit(ctx, "test.marker", o.marker, nil); err != nil {
		f.t.Fatal(err)
	}
	return o
}

type target string

// The three targets of every request: the rep ann's own objects, those of
// ann's colleague ben, and those of bea in the other tenant.
const (
	own     target = "own"
	other   target = "other"
	foreign target = "foreign"
)

var targetUser = map[target]string{own: "ann", other: "ben", foreign: "bea"}

// The caller of each role, all in acme.
var roleUser = map[store.Role]string{store.RoleRep: "ann", store.RoleManager: "mia", store.RoleOwner: "otto"}

type caseKind int

const (
	objectCase caseKind = iota // the request names one object: visible → ok, invisible → 404
	listCase                   // the answer lists objects: find(o) shows exactly when visible
	globalCase                 // the answer is about the caller's tenant as a whole
	publicCase                 // no token
)

type matrixCase struct {
	kind caseKind
	ok   int // status when allowed (and visible)
	// path and body of the request on o (the route gives the method).
	path func(o objSet) string
	body func(o objSet) any
	find func(o objSet) string
}

func reason(objSet) any { return map[string]string{"reason": "matrix test"} }

// matrix has one entry per route of the table; a route without one fails
// TestRoleMatrix.
var matrix = map[string]matrixCase{
	"GET /v1/openapi.json": {kind: publicCase, ok: 200, path: func(objSet) string { return "/v1/openapi.json" }},
	"GET /v1/play/{id}":    {kind: publicCase, ok: 403, path: func(o objSet) string { return "/v1/play/" + o.r.rec.ID }},
	"GET /v1/me":           {kind: globalCase, ok: 200, path: func(objSet) string { return "/v1/me" }},

	"GET /v1/calls":                 {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/calls" }, find: func(o objSet) string { return o.r.call.ID }},
	"GET /v1/calls/live":            {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/calls/live" }, find: func(o objSet) string { return o.live.ID }},
	"GET /v1/calls/{id}":            {kind: objectCase, ok: 200, path: func(o objSet) string { return "/v1/calls/" + o.r.call.ID }},
	"DELETE /v1/calls/{id}":         {kind: objectCase, ok: 204, path: func(o objSet) string { return "/v1/calls/" + o.r.call.ID }, body: reason},
	"GET /v1/calls/{id}/recordings": {kind: objectCase, ok: 200, path: func(o objSet) string { return "/v1/calls/" + o.r.call.ID + "/recordings" }},
	"GET /v1/calls/{id}/consent":    {kind: objectCase, ok: 200, path: func(o objSet) string { return "/v1/calls/" + o.r.call.ID + "/consent" }},
	"GET /v1/calls/{id}/access":     {kind: objectCase, ok: 200, path: func(o objSet) string { return "/v1/calls/" + o.r.call.ID + "/access" }},
	"PUT /v1/calls/{id}/hold":       {kind: objectCase, ok: 201, path: func(o objSet) string { return "/v1/calls/" + o.r.call.ID + "/hold" }, body: reason},
	"DELETE /v1/calls/{id}/hold":    {kind: objectCase, ok: 200, path: func(o objSet) string { return "/v1/calls/" + o.held.ID + "/hold" }, body: reason},

	"GET /v1/recordings":             {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/recordings" }, find: func(o objSet) string { return o.r.rec.ID }},
	"GET /v1/recordings/{id}":        {kind: objectCase, ok: 200, path: func(o objSet) string { return "/v1/recordings/" + o.r.rec.ID }},
	"DELETE /v1/recordings/{id}":     {kind: objectCase, ok: 204, path: func(o objSet) string { return "/v1/recordings/" + o.r.rec.ID }, body: reason},
	"GET /v1/recordings/{id}/audio":  {kind: objectCase, ok: 200, path: func(o objSet) string { return "/v1/recordings/" + o.r.rec.ID + "/audio" }},
	"POST /v1/recordings/{id}/links": {kind: objectCase, ok: 201, path: func(o objSet) string { return "/v1/recordings/" + o.r.rec.ID + "/links" }},
	"GET /v1/access":                 {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/access" }, find: func(o objSet) string { return o.access.ID }},
	"GET /v1/holds":                  {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/holds" }, find: func(o objSet) string { return o.held.ID }},
	"GET /v1/suspensions":            {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/suspensions" }, find: func(o objSet) string { return o.suspension }},
	"POST /v1/suspensions/lift": {kind: objectCase, ok: 200, path: func(objSet) string { return "/v1/suspensions/lift" },
		body: func(o objSet) any { return map[string]string{"username": o.user.Username} }},
	"GET /v1/retention":    {kind: globalCase, ok: 200, path: func(objSet) string { return "/v1/retention" }},
	"GET /v1/audit":        {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/audit" }, find: func(o objSet) string { return o.marker }},
	"GET /v1/export/calls": {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/export/calls" }, find: func(o objSet) string { return o.r.call.ID }},
	"GET /v1/users":        {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/users" }, find: func(o objSet) string { return o.user.ID }},
	"POST /v1/users": {kind: globalCase, ok: 201, path: func(objSet) string { return "/v1/users" }, body: func(objSet) any {
		return map[string]string{"username": "u" + strings.ReplaceAll(store.NewCallID(), "-", ""), "role": "rep", "password": "correct horse battery"}
	}},
	"GET /v1/tokens":         {kind: listCase, ok: 200, path: func(objSet) string { return "/v1/tokens" }, find: func(o objSet) string { return o.token }},
	"POST /v1/tokens":        {kind: objectCase, ok: 201, path: func(objSet) string { return "/v1/tokens" }, body: func(o objSet) any { return map[string]any{"username": o.user.Username} }},
	"DELETE /v1/tokens/{id}": {kind: objectCase, ok: 200, path: func(o objSet) string { return "/v1/tokens/" + o.token }},
}

// TestRoleMatrix calls every endpoint as the rep, manager and owner of
// acme on acme's objects (the rep's own and a colleague's) and on globex's.
// Forbidden roles get 403; another tenant's objects, and a colleague's for
// a rep on own-only endpoints, are invisible: 404 or absent from lists.
// No answer ever carries an invisible object's id.
func TestRoleMatrix(t *testing.T) {
	f := newFixture(t)
	for _, rt := range routes() {
		mc, ok := matrix[rt.pattern()]
		if !ok {
			t.Errorf("route %s is missing from the test matrix", rt.pattern())
			continue
		}
		t.Run(rt.pattern(), func(t *testing.T) {
			f.t = t
			objs := map[target]objSet{}
			for _, tg := range []target{own, other, foreign} {
				objs[tg] = f.objectsOf(targetUser[tg])
			}
			if rt.public {
				w := f.do("", rt.method, mc.path(objs[own]), nil)
				if w.Code != mc.ok || mc.kind != publicCase {
					t.Fatalf("public route: %d, want %d: %s", w.Code, mc.ok, w.Body.String())
				}
				return
			}
			if mc.kind == publicCase {
				t.Fatal("matrix calls a token route public")
			}
			for _, role := range []store.Role{store.RoleRep, store.RoleManager, store.RoleOwner} {
				for _, tg := range []target{own, other, foreign} {
					o := objs[tg]
					var body any
					if mc.body != nil {
						body = mc.body(o)
					}
					w := f.do(roleUser[role], rt.method, mc.path(o), body)
					visible := tg != foreign && !(role == store.RoleRep && tg == other && rt.own)
					want := mc.ok
					switch {
					case !rt.allows(role):
						want = http.StatusForbidden
					case mc.kind == objectCase && !visible:
						want = http.StatusNotFound
					}
					if w.Code != want {
						t.Errorf("%s on %s: %d, want %d: %.300q", role, tg, w.Code, want, w.Body.String())
						continue
					}
					if want >= 400 {
						if code := errorCode(t, w); want == 403 && code != "forbidden" || want == 404 && code != "not_found" {
							t.Errorf("%s on %s: code %q", role, tg, code)
						}
					}
					if mc.kind == listCase && rt.allows(role) {
						if shown := strings.Contains(w.Body.String(), mc.find(o)); shown != visible {
							t.Errorf("%s on %s: object listed=%v, want %v", role, tg, shown, visible)
						}
					}
					// Nothing invisible ever leaks, not even in an error.
					hidden := []objSet{objs[foreign]}
					if role == store.RoleRep && rt.own {
						hidden = append(hidden, objs[other])
					}
					for _, h := range hidden {
						for _, id := range []string{h.r.call.ID, h.r.rec.ID, h.held.ID, h.live.ID, h.access.ID, h.token, h.user.ID, h.marker} {
							if strings.Contains(w.Body.String(), id) {
								t.Errorf("%s on %s: answer carries hidden id %s: %.300q", role, tg, id, w.Body.String())
							}
						}
					}
				}
			}
		})
	}
	for pattern := range matrix {
		if !slices.ContainsFunc(routes(), func(rt route) bool { return rt.pattern() == pattern }) {
			t.Errorf("matrix entry %s has no route", pattern)
		}
	}
}

// TestOpenAPIMatchesRoutes holds the served document to the table: the same
// operations, with the same roles.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	f := newFixture(t)
	w := f.do("", "GET", "/v1/openapi.json", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("openapi.json: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			OperationID string           `json:"operationId"`
			Roles       []string         `json:"x-blackbox-roles"`
			Own         bool             `json:"x-blackbox-rep-own-only"`
			Security    *[]any           `json:"security"`
			Responses   map[string]any   `json:"responses"`
			Parameters  []map[string]any `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	ops := map[string]bool{}
	for path, methods := range doc.Paths {
		for m, op := range methods {
			pattern := strings.ToUpper(m) + " " + path
			documented[pattern] = true
			i := slices.IndexFunc(routes(), func(rt route) bool { return rt.pattern() == pattern })
			if i < 0 {
				t.Errorf("OpenAPI documents %s, which the API does not serve", pattern)
				continue
			}
			rt := routes()[i]
			var want []string
			for _, r := range rt.roles {
				want = append(want, string(r))
			}
			if !slices.Equal(op.Roles, want) && !(len(op.Roles) == 0 && len(want) == 0) {
				t.Errorf("%s: OpenAPI roles %v, table %v", pattern, op.Roles, want)
			}
			if op.Own != rt.own {
				t.Errorf("%s: OpenAPI own-only %v, table %v", pattern, op.Own, rt.own)
			}
			if rt.public != (op.Security != nil && len(*op.Security) == 0) {
				t.Errorf("%s: public in table %v, OpenAPI security %v", pattern, rt.public, op.Security)
			}
			if op.OperationID == "" || ops[op.OperationID] {
				t.Errorf("%s: operationId %q missing or reused", pattern, op.OperationID)
			}
			ops[op.OperationID] = true
			if len(op.Responses) == 0 {
				t.Errorf("%s: no responses documented", pattern)
			}
			if strings.Contains(path, "{id}") && !slices.ContainsFunc(op.Parameters, func(p map[string]any) bool { return p["name"] == "id" && p["in"] == "path" }) {
				t.Errorf("%s: path parameter id not documented", pattern)
			}
		}
	}
	for _, rt := range routes() {
		if !documented[rt.pattern()] {
			t.Errorf("route %s is missing from openapi.json", rt.pattern())
		}
	}
}

func TestAuthenticationAndRouting(t *testing.T) {
	f := newFixture(t)
	for _, rt := range routes() {
		if rt.public {
			continue
		}
		path := strings.ReplaceAll(rt.path, "{id}", "x")
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer bbk_nope"}, {"Authorization", "Basic " + f.tokens["otto"]}} {
			w := f.do("", rt.method, path, nil, hdr...)
			if w.Code != 401 || errorCode(t, w) != "unauthenticated" || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with %v: %d %s", rt.pattern(), hdr, w.Code, w.Body.String())
			}
		}
	}
	// The tenant comes from the token, whatever the request says.
	w := f.do("bea", "GET", "/v1/me?tenant=acme", nil, "X-Tenant", "acme")
	if me := decodeInto[map[string]string](t, w); me["tenant"] != "globex" || me["user"] != "bea" || me["role"] != "rep" {
		t.Fatalf("me: %v", me)
	}
	if w := f.do("otto", "GET", "/v1/nope", nil); w.Code != 404 || errorCode(t, w) != "not_found" {
		t.Fatalf("unknown path: %d %s", w.Code, w.Body.String())
	}
	w = f.do("otto", "PATCH", "/v1/calls/x", nil)
	if w.Code != 405 || errorCode(t, w) != "method_not_allowed" || w.Header().Get("Allow") != "GET, HEAD, DELETE" {
		t.Fatalf("wrong method: %d %q %s", w.Code, w.Header().Get("Allow"), w.Body.String())
	}
	// Bodies are checked strictly.
	c := f.record("ann", f.clock.Now(), 10)
	for _, body := range []string{`{"reason": 7}`, `{"reson": "typo"}`, `{"reason": "a"} {"reason": "b"}`, `{`} {
		r := f.do("otto", "PUT", "/v1/calls/"+c.call.ID+"/hold", rawBody(body))
		if r.Code != 400 {
			t.Errorf("body %s: %d %s", body, r.Code, r.Body.String())
		}
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "since=yesterday", "direction=sideways", "live=maybe", "user=nobody"} {
		if r := f.do("otto", "GET", "/v1/calls?"+q, nil); r.Code != 400 {
			t.Errorf("?%s: %d", q, r.Code)
		}
	}
	// A rep asking for a colleague's list is refused, not silently narrowed.
	if r := f.do("ann", "GET", "/v1/calls?user=ben", nil); r.Code != 403 {
		t.Errorf("rep lists a colleague's calls: %d", r.Code)
	}
}
