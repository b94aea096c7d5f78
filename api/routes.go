package api

import (
	"net/http"
	"slices"

	"github.com/blackbox-gw/blackbox/store"
)

// Who may call a route. A rep reaches only its own calls and recordings on
// the routes marked own; managers and owners reach the whole tenant.
var (
	everyone = []store.Role{store.RoleRep, store.RoleManager, store.RoleOwner}
	team     = []store.Role{store.RoleManager, store.RoleOwner}
	owners   = []store.Role{store.RoleOwner}
)

// route is one endpoint: the single table roles are enforced from. The
// tests iterate over it and fail when it and the OpenAPI document disagree.
type route struct {
	method string
	path   string // a net/http ServeMux path pattern
	// roles may call the route; nil with public set means no token at all.
	roles  []store.Role
	public bool
	// own: a rep reaches only its own objects through this route (others
	// answer 404, as if they did not exist).
	own    bool
	handle func(s *Server, q *req) error
}

// pattern is the route's metric label and ServeMux pattern.
func (rt route) pattern() string { return rt.method + " " + rt.path }

func (rt route) allows(r store.Role) bool { return slices.Contains(rt.roles, r) }

func routes() []route {
	return []route{
		{method: http.MethodGet, path: "/v1/openapi.json", public: true, handle: (*Server).openAPI},
		{method: http.MethodGet, path: "/v1/play/{id}", public: true, handle: (*Server).playLink},

		{method: http.MethodGet, path: "/v1/me", roles: everyone, handle: (*Server).me},

		{method: http.MethodGet, path: "/v1/calls", roles: everyone, own: true, handle: (*Server).listCalls},
		{method: http.MethodGet, path: "/v1/calls/live", roles: team, handle: (*Server).liveCalls},
		{method: http.MethodGet, path: "/v1/calls/{id}", roles: everyone, own: true, handle: (*Server).getCall},
		{method: http.MethodDelete, path: "/v1/calls/{id}", roles: owners, handle: (*Server).deleteCall},
		{method: http.MethodGet, path: "/v1/calls/{id}/recordings", roles: everyone, own: true, handle: (*Server).callRecordings},
		{method: http.MethodGet, path: "/v1/calls/{id}/consent", roles: everyone, own: true, handle: (*Server).callConsent},
		{method: http.MethodGet, path: "/v1/calls/{id}/access", roles: team, handle: (*Server).callAccess},
		{method: http.MethodPut, path: "/v1/calls/{id}/hold", roles: owners, handle: (*Server).placeHold},
		{method: http.MethodDelete, path: "/v1/calls/{id}/hold", roles: owners, handle: (*Server).releaseHold},

		{method: http.MethodGet, path: "/v1/recordings", roles: everyone, own: true, handle: (*Server).listRecordings},
		{method: http.MethodGet, path: "/v1/recordings/{id}", roles: everyone, own: true, handle: (*Server).getRecording},
		{method: http.MethodDelete, path: "/v1/recordings/{id}", roles: owners, handle: (*Server).deleteRecording},
		{method: http.MethodGet, path: "/v1/recordings/{id}/audio", roles: everyone, own: true, handle: (*Server).playProxy},
		{method: http.MethodPost, path: "/v1/recordings/{id}/links", roles: everyone, own: true, handle: (*Server).createLink},

		{method: http.MethodGet, path: "/v1/access", roles: team, handle: (*Server).listAccess},
		{method: http.MethodGet, path: "/v1/holds", roles: owners, handle: (*Server).listHolds},
		{method: http.MethodGet, path: "/v1/retention", roles: owners, handle: (*Server).retention},
		{method: http.MethodGet, path: "/v1/suspensions", roles: team, handle: (*Server).listSuspensions},
		{method: http.MethodPost, path: "/v1/suspensions/lift", roles: team, handle: (*Server).liftSuspensions},
		{method: http.MethodGet, path: "/v1/audit", roles: owners, handle: (*Server).listAudit},
		{method: http.MethodGet, path: "/v1/export/calls", roles: team, handle: (*Server).exportCalls},

		{method: http.MethodGet, path: "/v1/users", roles: owners, handle: (*Server).listUsers},
		{method: http.MethodPost, path: "/v1/users", roles: owners, handle: (*Server).createUser},
		{method: http.MethodGet, path: "/v1/tokens", roles: owners, handle: (*Server).listTokens},
		{method: http.MethodPost, path: "/v1/tokens", roles: owners, handle: (*Server).createToken},
		{method: http.MethodDelete, path: "/v1/tokens/{id}", roles: owners, handle: (*Server).revokeToken},
	}
}
