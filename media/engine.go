package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures an Engine.
type Options struct {
	BindAddr     netip.Addr // local address RTP sockets bind to (0.0.0.0 allowed)
	ExternalAddr netip.Addr // address written into SDP c= lines (never unspecified)
	// PortMin and PortMax are an inclusive range; a pair is an even RTP port
	// and the next odd RTCP port. Each session takes two pairs.
	PortMin, PortMax int
	// RTPTimeout: no RTP/RTCP from a leg for this long calls OnTimeout.
	// Zero disables the check.
	RTPTimeout time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil = no metrics registered
}

// Engine owns the RTP port range and the live sessions.
type Engine struct {
	opts      Options
	log       *slog.Logger
	network   string
	pool      *portPool
	collector *collector

	mu       sync.Mutex
	closed   bool
	sessions map[*Session]struct{}
	retired  totals // counters of closed sessions, so metrics never go back
}

// NewEngine checks opts and registers the metrics. It opens no socket:
// ports are bound per session.
func NewEngine(opts Options) (*Engine, error) {
	if !opts.BindAddr.IsValid() || opts.BindAddr.Zone() != "" {
		return nil, fmt.Errorf("media: bind address %q is not an IP address", opts.BindAddr)
	}
	if !opts.ExternalAddr.IsValid() || opts.ExternalAddr.IsUnspecified() || opts.ExternalAddr.IsMulticast() {
		return nil, fmt.Errorf("media: external address %q must be a unicast IP address", opts.ExternalAddr)
	}
	opts.BindAddr, opts.ExternalAddr = opts.BindAddr.Unmap(), opts.ExternalAddr.Unmap()
	network := "udp6"
	switch {
	case opts.BindAddr.Is4():
		network = "udp4"
		if !opts.ExternalAddr.Is4() {
			return nil, fmt.Errorf("media: external address %s is IPv6 but the bind address %s is IPv4", opts.ExternalAddr, opts.BindAddr)
		}
	case opts.BindAddr.IsUnspecified():
		network = "udp" // [::] serves IPv4 and IPv6
	case opts.ExternalAddr.Is4():
		return nil, fmt.Errorf("media: external address %s is IPv4 but the bind address %s is IPv6", opts.ExternalAddr, opts.BindAddr)
	}
	if opts.PortMin < minMediaPort {
		return nil, fmt.Errorf("media: rtp port range starts at %d, want >= %d", opts.PortMin, minMediaPort)
	}
	pool, err := newPortPool(opts.PortMin, opts.PortMax)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	if pool.pairs() < 2 {
		return nil, fmt.Errorf("media: rtp port range %d-%d holds fewer than the 2 pairs one call needs", opts.PortMin, opts.PortMax)
	}
	if opts.RTPTimeout < 0 {
		return nil, fmt.Errorf("media: negative rtp timeout %v", opts.RTPTimeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Engine{
		opts:     opts,
		log:      opts.Logger.With("component", "media"),
		network:  network,
		pool:     pool,
		sessions: map[*Session]struct{}{},
	}
	e.collector = newCollector(e)
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(e.collector); err != nil {
			return nil, fmt.Errorf("media: register metrics: %w", err)
		}
	}
	return e, nil
}

// NewSession allocates two port pairs (one per leg) and starts the relay.
// It fails with ErrNoPorts when the range is exhausted.
func (e *Engine) NewSession(opts SessionOptions) (*Session, error) {
	if e.isClosed() {
		return nil, ErrClosed
	}
	s := &Session{
		e:           e,
		opts:        opts,
		log:         e.log.With("session", opts.ID),
		epoch:       time.Now(),
		timeout:     e.opts.RTPTimeout,
		timeoutHeld: opts.DeferTimeout,
		events:      make(chan dtmfEvent, 32),
		done:        make(chan struct{}),
		ctlDone:     make(chan struct{}),
	}
	s.bridge.Store(true)
	s.SetTap(opts.Tap)
	for x := LegA; x <= LegB; x++ {
		rtpConn, rtcpConn, port, err := e.bindPair()
		if err != nil {
			if x == LegB {
				l := s.legs[LegA]
				_ = l.ep[sockRTP].conn.Close()
				_ = l.ep[sockRTCP].conn.Close()
				e.pool.put(l.port())
			}
			return nil, fmt.Errorf("media session %s: leg %v: %w", opts.ID, x, err)
		}
		s.legs[x] = newLegRelay(x, rtpConn, rtcpConn, port)
		s.neg[x] = legNeg{sessID: newSessionID(), version: 1}
		s.publish(x, 0)
	}
	s.start()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = s.Close()
		return nil, ErrClosed
	}
	e.sessions[s] = struct{}{}
	e.mu.Unlock()
	return s, nil
}

// bindPair takes a free pair and binds both sockets. A pair that cannot be
// bound (another process holds a port) goes back to the end of the pool and
// the next one is tried, each free pair at most once.
func (e *Engine) bindPair() (*net.UDPConn, *net.UDPConn, int, error) {
	var lastErr error
	for range e.pool.pairs() {
		port, ok := e.pool.get()
		if !ok {
			break
		}
		rtpConn, err := e.listen(port)
		if err != nil {
			e.pool.put(port)
			lastErr = err
			continue
		}
		rtcpConn, err := e.listen(port + 1)
		if err != nil {
			_ = rtpConn.Close()
			e.pool.put(port)
			lastErr = err
			continue
		}
		return rtpConn, rtcpConn, port, nil
	}
	if lastErr != nil {
		return nil, nil, 0, fmt.Errorf("%w (last bind error: %w)", ErrNoPorts, lastErr)
	}
	return nil, nil, 0, ErrNoPorts
}

func (e *Engine) listen(port int) (*net.UDPConn, error) {
	addr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.opts.BindAddr, uint16(port)))
	c, err := net.ListenUDP(e.network, addr)
	if err != nil {
		return nil, fmt.Errorf("bind rtp port %d: %w", port, err)
	}
	return c, nil
}

// canReach reports whether the sockets can send to a (an IPv4-only bind
// cannot reach an IPv6 party, nor the reverse).
func (e *Engine) canReach(a netip.Addr) bool {
	switch {
	case a.IsUnspecified() || e.network == "udp":
		return true
	case e.network == "udp4":
		return a.Is4()
	default:
		return a.Is6()
	}
}

// PortsInUse is the number of local ports (RTP and RTCP) held by sessions.
func (e *Engine) PortsInUse() int { return 2 * e.pool.pairsInUse() }

// Sessions is the number of live sessions.
func (e *Engine) Sessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

// Close closes every session and unregisters the metrics. NewSession fails
// with ErrClosed afterwards.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	live := make([]*Session, 0, len(e.sessions))
	for s := range e.sessions {
		live = append(live, s)
	}
	e.mu.Unlock()
	var errs []error
	for _, s := range live {
		errs = append(errs, s.Close())
	}
	if e.opts.Registerer != nil {
		e.opts.Registerer.Unregister(e.collector)
	}
	return errors.Join(errs...)
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// retire moves a closed session's counters into the engine's totals.
func (e *Engine) retire(s *Session) {
	st := s.Stats()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.sessions[s]; ok {
		delete(e.sessions, s)
	}
	e.retired.add(st)
}

func (e *Engine) totals() (totals, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.retired
	for s := range e.sessions {
		t.add(s.Stats())
	}
	return t, len(e.sessions)
}
