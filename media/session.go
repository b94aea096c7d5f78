package media

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Tap observes audio without the relay knowing what it is. It is called on
// the relay goroutine of each leg and on the goroutine running Play, so
// calls for different sources can be concurrent. It must not block and must
// not call Session.Close. hdr and payload are valid only during the call;
// copy what you keep.
//
// The Tap sees every valid RTP packet accepted from a leg (latched source),
// whether or not it is forwarded (bridge off, other leg on hold), and every
// prompt packet once it was sent. RTCP is not shown.
type Tap interface {
	RTP(src Source, hdr *rtp.Header, payload []byte, at time.Time)
}

type tapBox struct{ tap Tap }

// SessionOptions configures one call's media.
type SessionOptions struct {
	ID string // for logs only
	// OnTimeout is called at most once per session, with the leg that sent
	// no RTP or RTCP for Options.RTPTimeout.
	OnTimeout func(leg Leg)
	// OnDTMF is called once per RFC 4733 event received from a leg, on the
	// first packet of the event that arrives. The packets are still relayed.
	OnDTMF func(leg Leg, digit rune)
	// Tap is optional and may be set later with SetTap.
	Tap Tap
	// DeferTimeout keeps the RTP timeout off until ArmTimeout: a call that
	// rings with early-media SDP but no early media must not time out
	// before it is answered.
	DeferTimeout bool
}

// Callbacks (OnTimeout, OnDTMF) run one at a time on the session's own
// goroutine, never on the relay; they may call Close. A slow OnDTMF loses
// events (counted in Stats) rather than stall the relay.

// Session is the media of one call: two legs, each with an RTP/RTCP port
// pair, and the goroutines relaying between them.
type Session struct {
	e       *Engine
	opts    SessionOptions
	log     *slog.Logger
	epoch   time.Time
	timeout time.Duration

	legs   [2]*legRelay
	bridge atomic.Bool
	tap    atomic.Pointer[tapBox]
	events chan dtmfEvent

	done       chan struct{}
	ctlDone    chan struct{}
	wg         sync.WaitGroup // socket readers
	closeOnce  sync.Once
	inCallback atomic.Bool

	mu     sync.Mutex // guards what follows
	closed bool
	plays  sync.WaitGroup // Play calls in flight
	neg    [2]legNeg
	// timeoutHeld is set while DeferTimeout holds the timeout off.
	timeoutHeld bool
	offer       *pendingOffer
}

func newSessionID() uint64 { return uint64(rand.Int64N(1<<62)) + 1 }

func (s *Session) start() {
	for x := range s.legs {
		for k := range s.legs[x].ep {
			s.wg.Add(1)
			go s.read(Leg(x), k)
		}
	}
	go s.control()
}

// SetBridge turns forwarding between the legs on or off. Off is the prompt
// phase: neither party hears the other, both stay latched and alive, and the
// Tap still sees their audio. The default is on.
func (s *Session) SetBridge(on bool) { s.bridge.Store(on) }

// SetTap sets or (with nil) removes the Tap.
func (s *Session) SetTap(t Tap) {
	if t == nil {
		s.tap.Store(nil)
		return
	}
	s.tap.Store(&tapBox{tap: t})
}

// LocalPort returns the RTP port of leg's pair (RTCP is the next port).
func (s *Session) LocalPort(leg Leg) int {
	if !leg.valid() {
		return 0
	}
	return s.legs[leg].port()
}

// Close stops the relay, ends any Play, releases the ports and stops every
// goroutine of the session. It is idempotent. Called from a callback, it
// returns without waiting for the callback's own goroutine, which ends as
// soon as the callback returns.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		for _, l := range s.legs {
			for _, e := range l.ep {
				_ = e.conn.Close()
			}
		}
		s.wg.Wait()
		s.plays.Wait()
		for _, l := range s.legs {
			s.e.pool.put(l.port())
		}
		s.e.retire(s)
	})
	if !s.inCallback.Load() {
		<-s.ctlDone
	}
	return nil
}
