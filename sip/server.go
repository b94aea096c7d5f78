// Package sip is Blackbox's signalling: transports, the registrar and the
// B2BUA that joins each rep's dialog to a trunk dialog (never a proxy: two
// independent dialogs per call, each with its own Call-ID, tags and SDP).
package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/media"
	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/recorder"
	"github.com/blackbox-gw/blackbox/store"
)

// Listener is one transport address to serve.
type Listener struct {
	Network string // udp or tcp
	Addr    string // HOST:PORT; port 0 picks a free one
}

// RegisterOptions bounds registrations.
type RegisterOptions struct {
	MinExpires, MaxExpires, DefaultExpires int // seconds
	MaxContacts                            int
	SweepInterval                          time.Duration
}

// Options configures a Server.
type Options struct {
	Listen       []Listener
	ExternalHost netip.Addr // written into Via, Contact and (through media) SDP
	Realm        string
	UserAgent    string
	NonceKey     []byte // HMAC key for digest nonces (share it across nodes)
	NonceTTL     time.Duration
	// DigestAlgorithms in order of preference; default SHA-256 then MD5.
	DigestAlgorithms []string
	Register         RegisterOptions
	RingTimeout      time.Duration
	TrunkTimeout     time.Duration
	MaxCalls         int
	Node             string

	DB         *store.DB
	Media      *media.Engine
	Recorder   *recorder.Manager // every call is recorded
	Consent    ConsentOptions
	Policy     *policy.Engine // decides every call before it leaves, and its consent mode
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o *Options) validate() error {
	switch {
	case o.DB == nil:
		return errors.New("sip: Options.DB is required")
	case o.Media == nil:
		return errors.New("sip: Options.Media is required")
	case o.Recorder == nil:
		return errors.New("sip: Options.Recorder is required: every call is recorded")
	case o.Consent.Prompt == nil:
		return errors.New("sip: Options.Consent.Prompt is required")
	case o.Policy == nil:
		return errors.New("sip: Options.Policy is required")
	case !o.ExternalHost.IsValid() || o.ExternalHost.IsUnspecified():
		return errors.New("sip: Options.ExternalHost must be a reachable address")
	case len(o.Listen) == 0:
		return errors.New("sip: at least one listener is required")
	case len(o.NonceKey) < 16:
		return errors.New("sip: Options.NonceKey must hold at least 16 bytes")
	case o.Realm == "":
		return errors.New("sip: Options.Realm is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.UserAgent == "" {
		o.UserAgent = "Blackbox"
	}
	if len(o.DigestAlgorithms) == 0 {
		o.DigestAlgorithms = []string{"SHA-256", "MD5"}
	}
	if o.NonceTTL <= 0 {
		o.NonceTTL = 5 * time.Minute
	}
	if o.Register.MinExpires <= 0 {
		o.Register = RegisterOptions{MinExpires: 60, MaxExpires: 3600, DefaultExpires: 3600, MaxContacts: 10, SweepInterval: 10 * time.Second}
	}
	if o.RingTimeout <= 0 {
		o.RingTimeout = 90 * time.Second
	}
	if o.TrunkTimeout <= 0 {
		o.TrunkTimeout = 8 * time.Second
	}
	if o.MaxCalls <= 0 {
		o.MaxCalls = 2000
	}
	if o.Consent.DTMFTimeout <= 0 {
		o.Consent.DTMFTimeout = 10 * time.Second
	}
	return nil
}

// Server is the registrar and B2BUA.
type Server struct {
	opts    Options
	log     *slog.Logger
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	auth    *authenticator
	metrics *metrics
	calls   *callTable

	mu       sync.Mutex
	bound    map[string]netip.AddrPort // network -> actual listen address
	dialogUA map[string]*sipgo.DialogUA
	udpLocal sip.Addr

	ctx      context.Context // server lifetime, set by Serve
	admitMu  sync.Mutex      // orders admitting a call against Drain starting to wait
	draining atomic.Bool
	wg       sync.WaitGroup // calls, from admit to finish, and their goroutines
	ready    chan struct{}
}

// NewServer validates opts and prepares the SIP stack; Serve starts it.
func NewServer(opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(opts.UserAgent), sipgo.WithUserAgentHostname(opts.ExternalHost.String()))
	if err != nil {
		return nil, fmt.Errorf("sip user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(opts.Logger.With("component", "sipgo")))
	if err != nil {
		return nil, fmt.Errorf("sip server: %w", err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(opts.ExternalHost.String()), sipgo.WithClientLogger(opts.Logger.With("component", "sipgo")))
	if err != nil {
		return nil, fmt.Errorf("sip client: %w", err)
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger.With("component", "sip"),
		ua:       ua,
		srv:      srv,
		cli:      cli,
		auth:     newAuthenticator(opts.DB, opts.Realm, opts.NonceKey, opts.NonceTTL, opts.DigestAlgorithms),
		metrics:  newMetrics(opts.Registerer, opts.DB.ActiveBindings),
		calls:    newCallTable(),
		bound:    map[string]netip.AddrPort{},
		dialogUA: map[string]*sipgo.DialogUA{},
		ready:    make(chan struct{}),
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.srv.OnRegister(s.counted(s.handleRegister))
	s.srv.OnInvite(s.counted(s.handleInvite))
	s.srv.OnAck(s.counted(s.handleAck))
	s.srv.OnBye(s.counted(s.handleBye))
	s.srv.OnCancel(s.counted(s.handleCancel))
	s.srv.OnUpdate(s.counted(s.handleUpdate))
	s.srv.OnInfo(s.counted(s.handleInfo))
	s.srv.OnOptions(s.counted(s.handleOptions))
	s.srv.OnPrack(s.counted(s.handlePrack))
	s.srv.OnNoRoute(s.counted(s.handleNoRoute))
}

// counted wraps a handler with the request counter and a recover, so one bad
// message can never take the process down.
func (s *Server) counted(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		s.metrics.requests.WithLabelValues(methodLabel(req.Method)).Inc()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("sip handler panicked", "method", req.Method, "panic", r)
				s.respond(tx, req, sip.StatusInternalServerError, "Server Internal Error")
			}
		}()
		if req.Method != sip.ACK {
			if code, reason, hs := screenRequest(req); code != 0 {
				res := sip.NewResponseFromRequest(req, code, reason, nil)
				res.SipVersion = "SIP/2.0"
				for _, h := range hs {
					res.AppendHeader(h)
				}
				s.writeResponse(tx, req, res)
				return
			}
		}
		h(req, tx)
	}
}

// screenRequest applies the checks every request gets before its handler
// (RFC 3261 section 8.2): version, URI scheme, CSeq consistency, and option
// tags Blackbox does not support.
func screenRequest(req *sip.Request) (int, string, []sip.Header) {
	if req.SipVersion != "SIP/2.0" {
		return 505, "Version Not Supported", nil
	}
	if sc := strings.ToLower(req.Recipient.Scheme); sc != "sip" && sc != "sips" {
		return 416, "Unsupported URI Scheme", nil
	}
	if cseq := req.CSeq(); cseq == nil || cseq.MethodName != req.Method {
		return sip.StatusBadRequest, "Bad Request", []sip.Header{warning("CSeq method does not match the request")}
	}
	if req.Method != sip.CANCEL {
		if h := req.GetHeader("Require"); h != nil && strings.TrimSpace(h.Value()) != "" {
			return sip.StatusBadExtension, "Bad Extension", []sip.Header{sip.NewHeader("Unsupported", strings.TrimSpace(h.Value()))}
		}
	}
	return 0, "", nil
}

// Serve binds the listeners and serves until ctx is done, then drains:
// new calls are refused while calls in progress end or the context given to
// Drain expires.
func (s *Server) Serve(ctx context.Context) error {
	s.ctx = ctx
	var serveErr = make(chan error, len(s.opts.Listen))
	for _, l := range s.opts.Listen {
		switch l.Network {
		case "udp":
			conn, err := net.ListenPacket(ipNetwork("udp", l.Addr), l.Addr)
			if err != nil {
				return fmt.Errorf("listen udp %s: %w", l.Addr, err)
			}
			ap := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			s.setBound("udp", ap, conn.LocalAddr().String())
			go func() { <-ctx.Done(); conn.Close() }()
			go func() { serveErr <- s.srv.ServeUDP(conn) }()
			// Requests Blackbox sends over UDP leave from this socket (see
			// legRequest); wait until the transport layer holds it.
			if err := waitConnection(ctx, s.ua.TransportLayer(), conn.LocalAddr().String()); err != nil {
				return err
			}
		case "tcp":
			ln, err := net.Listen(ipNetwork("tcp", l.Addr), l.Addr)
			if err != nil {
				return fmt.Errorf("listen tcp %s: %w", l.Addr, err)
			}
			ap := ln.Addr().(*net.TCPAddr).AddrPort()
			s.setBound("tcp", ap, "")
			go func() { <-ctx.Done(); ln.Close() }()
			go func() { serveErr <- s.srv.ServeTCP(ln) }()
		default:
			return fmt.Errorf("listen %s://%s: unsupported transport", l.Network, l.Addr)
		}
	}
	close(s.ready)
	s.log.Info("sip listening", "addrs", s.boundStrings(), "external_host", s.opts.ExternalHost)

	sweep := time.NewTicker(s.opts.Register.SweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-serveErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sip transport stopped: %w", err)
		case <-sweep.C:
			if n, err := s.opts.DB.SweepBindings(ctx); err != nil {
				s.log.Warn("sweep expired registrations", "error", err)
			} else if n > 0 {
				s.log.Debug("expired registrations removed", "count", n)
			}
			s.auth.sweep()
		}
	}
}

func (s *Server) setBound(network string, ap netip.AddrPort, udpLocal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bound[network] = ap
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: s.opts.ExternalHost.String(), Port: int(ap.Port())}}
	if network == "tcp" {
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", "tcp")
	}
	s.dialogUA[network] = &sipgo.DialogUA{Client: s.cli, ContactHDR: contact, RewriteContact: true}
	if udpLocal != "" {
		host, port, _ := sip.ParseAddr(udpLocal)
		s.udpLocal = sip.Addr{IP: net.ParseIP(host), Port: port}
	}
}

// ipNetwork pins an IPv4 listen address to udp4/tcp4, so the socket's
// local address reads as the configured one (0.0.0.0, not [::]).
func ipNetwork(network, addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
			return network + "4"
		}
	}
	return network
}

// waitConnection waits until the UDP transport has taken addr into its pool.
func waitConnection(ctx context.Context, tl *sip.TransportLayer, addr string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := tl.GetConnection("udp", addr); err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("udp listener %s never became usable", addr)
		}
		time.Sleep(time.Millisecond)
	}
}

// Ready is closed once the listeners are bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address of a transport ("udp" or "tcp").
func (s *Server) Addr(network string) (netip.AddrPort, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ap, ok := s.bound[network]
	return ap, ok
}

func (s *Server) boundStrings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n, ap := range s.bound {
		out = append(out, n+"://"+ap.String())
	}
	return out
}

// dialogUAFor returns the dialog user agent whose Contact matches transport.
func (s *Server) dialogUAFor(transport string) *sipgo.DialogUA {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ua, ok := s.dialogUA[sip.NetworkToLower(transport)]; ok {
		return ua
	}
	for _, ua := range s.dialogUA {
		return ua
	}
	return nil
}

// ActiveCalls counts calls in progress on this node.
func (s *Server) ActiveCalls() int { return s.calls.count() }

// Drain refuses new calls and waits until the calls in progress end or ctx
// is done; then it hangs the rest up.
func (s *Server) Drain(ctx context.Context) {
	s.admitMu.Lock()
	s.draining.Store(true)
	s.admitMu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	for _, c := range s.calls.all() {
		c.hangup(endShutdown, "system")
	}
	<-done
}

// Close stops the SIP stack. Call after Serve returned and Drain.
func (s *Server) Close() error {
	return s.ua.Close()
}

// respond sends a response built from req and counts it.
func (s *Server) respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, headers ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range headers {
		res.AppendHeader(h)
	}
	s.writeResponse(tx, req, res)
}

func (s *Server) writeResponse(tx sip.ServerTransaction, req *sip.Request, res *sip.Response) {
	if res.GetHeader("Server") == nil {
		res.AppendHeader(sip.NewHeader("Server", s.opts.UserAgent))
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("respond", "method", req.Method, "code", res.StatusCode, "error", err)
		return
	}
	s.metrics.responses.WithLabelValues(methodLabel(req.Method), codeClass(res.StatusCode)).Inc()
}

const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REGISTER"

func allowHeader() sip.Header { return sip.NewHeader("Allow", allowMethods) }

func (s *Server) handleOptions(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(tx, req, sip.StatusOK, "OK", allowHeader(), sip.NewHeader("Accept", "application/sdp"))
}

func (s *Server) handleNoRoute(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(tx, req, sip.StatusMethodNotAllowed, "Method Not Allowed", allowHeader())
}

// PRACK only follows a reliable provisional response, which Blackbox never
// sends (100rel is refused up front).
func (s *Server) handlePrack(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
}

// sourceAddr is where a request really came from (NAT-aware).
func sourceAddr(req *sip.Request) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("source %q: %w", req.Source(), err)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func retryAfter(d time.Duration) sip.Header {
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return sip.NewHeader("Retry-After", strconv.Itoa(secs))
}

// reasonPhrase is the RFC 3261 phrase for the codes Blackbox sends.
func reasonPhrase(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 491:
		return "Request Pending"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Unknown"
}

// Draining reports whether new calls are being refused for shutdown.
func (s *Server) Draining() bool { return s.draining.Load() }
