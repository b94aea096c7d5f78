// Package api is Blackbox's control-plane HTTP API under /v1: calls,
// recordings and their governed playback (streamed through Blackbox, or by
// short-lived signed links to Blackbox's own playback endpoint), consent
// events, the playback access log, legal holds, deletion within policy,
// audit, export, users and tokens.
//
// Every request is authenticated by an API token; its tenant and role come
// from the token alone. Roles are enforced from one table (routes.go). A
// tenant's objects are invisible to every other tenant: asking for one
// answers 404, exactly as for an object that does not exist.
package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// Options configures the API.
type Options struct {
	DB      *store.DB
	Objects objects.Store
	// LinkKey signs playback links; at least 32 bytes. Every node must use
	// the same key: derive it from the shared keyring with
	// Keyring.Derive("playback-links").
	LinkKey []byte
	// LinkTTL is the lifetime of a link when the caller asks for none
	// (default 5m); MaxLinkTTL the longest a caller may ask for (default 1h).
	LinkTTL    time.Duration
	MaxLinkTTL time.Duration
	// BaseURL is the public URL links start with, e.g.
	// https://blackbox.example.com. Empty: the scheme and Host of the
	// request that made the link.
	BaseURL string
	// SessionIdle folds a listener's requests no further apart than this
	// into one access-log entry (default 10m).
	SessionIdle time.Duration
	// TrustedProxies may set X-Forwarded-For and X-Forwarded-Proto; the
	// access log then records the client they name. Empty: the TCP peer.
	TrustedProxies []netip.Prefix
	// RetentionDays gives a tenant's retention period from the policy (0 or
	// less: keep forever). Nil: every tenant keeps forever.
	RetentionDays func(tenantName string) int
	// SIPRealm is the digest realm of users created through the API.
	SIPRealm string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultLinkTTL     = 5 * time.Minute
	DefaultMaxLinkTTL  = time.Hour
	DefaultSessionIdle = 10 * time.Minute
	// MinLinkKeyLen is the shortest link-signing key accepted.
	MinLinkKeyLen = 32
)

// Server serves /v1. It holds no goroutines: close nothing.
type Server struct {
	opts Options
	log  *slog.Logger
	met  *metrics
	mux  *http.ServeMux
}

// New checks opts and builds the API handler. Mount it on a mux at "/v1/".
func New(opts Options) (*Server, error) {
	switch {
	case opts.DB == nil:
		return nil, errors.New("api: DB is required")
	case opts.Objects == nil:
		return nil, errors.New("api: Objects is required")
	case len(opts.LinkKey) < MinLinkKeyLen:
		return nil, fmt.Errorf("api: LinkKey must be at least %d bytes (Keyring.Derive(\"playback-links\"))", MinLinkKeyLen)
	case opts.LinkTTL < 0 || opts.MaxLinkTTL < 0 || opts.SessionIdle < 0:
		return nil, errors.New("api: LinkTTL, MaxLinkTTL and SessionIdle must not be negative")
	}
	if opts.LinkTTL == 0 {
		opts.LinkTTL = DefaultLinkTTL
	}
	if opts.MaxLinkTTL == 0 {
		opts.MaxLinkTTL = max(DefaultMaxLinkTTL, opts.LinkTTL)
	}
	if opts.MaxLinkTTL < opts.LinkTTL {
		return nil, fmt.Errorf("api: MaxLinkTTL %s is below LinkTTL %s", opts.MaxLinkTTL, opts.LinkTTL)
	}
	if opts.SessionIdle == 0 {
		opts.SessionIdle = DefaultSessionIdle
	}
	if opts.SIPRealm == "" {
		opts.SIPRealm = "blackbox"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BaseURL != "" {
		if err := checkBaseURL(opts.BaseURL); err != nil {
			return nil, fmt.Errorf("api: BaseURL: %w", err)
		}
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{opts: opts, log: opts.Logger, met: met}
	s.mux = s.buildMux()
	return s, nil
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// buildMux registers every route of the table, plus a catch-all that
// answers unknown paths 404 and known paths with another method 405, both
// as JSON.
func (s *Server) buildMux() *http.ServeMux {
	mux := http.NewServeMux()
	paths := http.NewServeMux() // path-only patterns, to tell 405 from 404
	allowed := map[string][]string{}
	for _, rt := range routes() {
		rt := rt
		mux.Handle(rt.method+" "+rt.path, s.instrument(rt.pattern(), s.handler(rt)))
		if _, seen := allowed[rt.path]; !seen {
			paths.Handle(rt.path, http.NotFoundHandler())
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	mux.Handle("/v1/", s.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p := paths.Handler(r); p != "" {
			w.Header().Set("Allow", allowHeader(allowed[p]))
			writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s", r.Method, p))
			return
		}
		writeError(w, errorf(http.StatusNotFound, "not_found", "no such endpoint"))
	})))
	return mux
}

func allowHeader(methods []string) string {
	out := ""
	for i, m := range methods {
		if i > 0 {
			out += ", "
		}
		out += m
		if m == http.MethodGet {
			out += ", HEAD"
		}
	}
	return out
}
