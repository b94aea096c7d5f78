package sip

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/blackbox-gw/blackbox/media"
	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/recorder"
	"github.com/blackbox-gw/blackbox/store"
)

// End reasons stored on the call record.
const (
	endBye              = "bye"
	endCancel           = "cancel"
	endRTPTimeout       = "rtp_timeout"
	endShutdown         = "shutdown"
	endNoAnswer         = "no_answer"
	endBusy             = "busy"
	endRejected         = "rejected"
	endTrunkUnreachable = "trunk_unreachable"
	endNoRegistration   = "no_registration"
	endUnreachable      = "contact_unreachable"
	endFailed           = "failed"
	endNoAck            = "no_ack"
	endSpendCap         = "spend_cap"
)

// Call joins leg A (the dialog that reached Blackbox, where Blackbox is UAS)
// and leg B (the dialog Blackbox created, where it is UAC). Until leg A is
// answered, the goroutine handling the INVITE owns the call and everything
// that would end it cancels setupCtx; afterwards hangup tears it down.
type Call struct {
	srv   *Server
	log   *slog.Logger
	scope *store.Scope

	setupCtx    context.Context
	setupCancel context.CancelCauseFunc

	mu          sync.Mutex
	rec         store.Call
	a           *sipgo.DialogServerSession
	b           *sipgo.DialogClientSession
	media       *media.Session
	established bool
	ended       bool
	lastSDP     [2][]byte // what Blackbox last sent each leg (answers to refreshes)
	endReason   string
	hangupBy    string
	endAt       time.Time // when the call ended: the hangup decision, not the BYE round trips after it

	recording   *recorder.Recording
	consentMode store.ConsentMode
	ticket      policy.Ticket // the policy slot held; released in finish
	// digits carries RFC 4733 digits once collecting starts (at answer);
	// the consent prompt reads them.
	digits     chan digit
	collecting atomic.Bool

	offerMu sync.Mutex // one SDP negotiation at a time (491 otherwise)
	acks    sync.Map   // leg/CSeq of a re-INVITE 2xx awaiting ACK -> chan struct{}

	done chan struct{}
}

func (s *Server) newCall(scope *store.Scope, rec store.Call) *Call {
	ctx, cancel := context.WithCancelCause(s.ctxOrBackground())
	return &Call{
		consentMode: store.ConsentAnnounce,
		digits:      make(chan digit, 8),
		srv:         s,
		log:         s.log.With("call", rec.ID, "direction", rec.Direction),
		scope:       scope,
		setupCtx:    ctx,
		setupCancel: cancel,
		rec:         rec,
		done:        make(chan struct{}),
	}
}

func (s *Server) ctxOrBackground() context.Context {
	if s.ctx != nil {
		return s.ctx
	}
	return context.Background()
}

// party names which side hung up, from the leg's role in this call.
func (c *Call) party(leg media.Leg) string {
	if leg == media.LegA {
		return "caller"
	}
	return "callee"
}

// update applies fn to the record and writes it to the store.
func (c *Call) update(fn func(r *store.Call)) {
	c.mu.Lock()
	fn(&c.rec)
	rec := c.rec
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.scope.UpdateCall(ctx, rec); err != nil {
		c.log.Error("update call record", "error", err)
	}
}

var (
	errCallerCancelled = errors.New("caller cancelled")
	errRingTimeout     = errors.New("ring timeout")
)

// endCause carries why and by whom a call was ended while still in setup,
// so the goroutine that owns setup can finish it accordingly.
type endCause struct{ reason, by string }

func (e endCause) Error() string { return "call ended: " + e.reason }

// hangup ends the call for reason. Before answer it cancels setup (the
// INVITE goroutine sends the final response); after answer it sends BYE on
// every leg still up. Safe to call from any goroutine, any number of times.
func (c *Call) hangup(reason, by string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	if !c.established {
		c.mu.Unlock()
		c.setupCancel(endCause{reason: reason, by: by})
		return
	}
	c.ended = true
	c.endReason, c.hangupBy = reason, by
	c.endAt = time.Now()
	a, b := c.a, c.b
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	// The recording ends with the call, not after the BYE round trips.
	wg.Add(1)
	go func() { defer wg.Done(); c.stopRecording() }()
	if a != nil && by != "caller" && a.LoadState() != sip.DialogStateEnded {
		wg.Add(1)
		go func() { defer wg.Done(); c.bye(ctx, "a", a.Bye) }()
	}
	if b != nil && by != "callee" && b.LoadState() != sip.DialogStateEnded {
		wg.Add(1)
		go func() { defer wg.Done(); c.bye(ctx, "b", b.Bye) }()
	}
	wg.Wait()
	c.finish(reason, by, 0, 0)
}

func (c *Call) bye(ctx context.Context, leg string, bye func(context.Context) error) {
	if err := bye(ctx); err != nil {
		c.log.Warn("BYE failed", "leg", leg, "error", err)
	}
}

// finish releases media and the call table entries and writes the final
// record. Codes of 0 keep what the record already has.
func (c *Call) finish(reason, by string, aCode, bCode int) {
	c.mu.Lock()
	c.ended = true
	if c.endReason == "" {
		c.endReason, c.hangupBy = reason, by
	}
	if c.endAt.IsZero() {
		c.endAt = time.Now()
	}
	ms, cause, endAt := c.media, endCause{reason: c.endReason, by: c.hangupBy}, c.endAt
	c.mu.Unlock()
	c.setupCancel(cause) // stop whatever setup still runs
	c.stopRecording()
	c.settlePolicy()
	if ms != nil {
		if err := ms.Close(); err != nil {
			c.log.Warn("close media", "error", err)
		}
	}
	c.srv.calls.remove(c)
	c.update(func(r *store.Call) {
		r.EndAt = endAt
		r.EndReason, r.HangupBy = c.endReason, c.hangupBy
		if aCode != 0 {
			r.ACode = aCode
		}
		if bCode != 0 {
			r.BCode = bCode
		}
	})
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	c.srv.metrics.callsActive.WithLabelValues(string(rec.Direction)).Dec()
	c.srv.metrics.callsTotal.WithLabelValues(string(rec.Direction), callResult(rec)).Inc()
	c.log.Info("call ended", "reason", rec.EndReason, "hangup_by", rec.HangupBy, "a_code", rec.ACode, "b_code", rec.BCode,
		"duration", durationOf(rec))
	close(c.done)
	c.srv.wg.Done() // taken in admit
}

func durationOf(r store.Call) time.Duration {
	if r.AnswerAt.IsZero() || r.EndAt.IsZero() {
		return 0
	}
	return r.EndAt.Sub(r.AnswerAt).Round(time.Millisecond)
}

func callResult(r store.Call) string {
	switch {
	case !r.AnswerAt.IsZero():
		return "answered"
	case r.EndReason == endCancel:
		return "cancelled"
	case r.EndReason == endBusy:
		return "busy"
	case r.EndReason == endNoAnswer:
		return "no_answer"
	case r.ACode == 403 || r.ACode == 404 || r.ACode == 488 || r.ACode == 484:
		return "rejected"
	}
	return "failed"
}

// callTable finds calls by the dialog ids of their legs.
type callTable struct {
	mu       sync.Mutex
	byDialog map[string]*Call
	calls    map[*Call][]string
}

func newCallTable() *callTable {
	return &callTable{byDialog: map[string]*Call{}, calls: map[*Call][]string{}}
}

func (t *callTable) add(c *Call) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.calls[c]; !ok {
		t.calls[c] = nil
	}
}

func (t *callTable) bind(c *Call, dialogID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byDialog[dialogID] = c
	t.calls[c] = append(t.calls[c], dialogID)
}

func (t *callTable) remove(c *Call) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range t.calls[c] {
		if t.byDialog[id] == c {
			delete(t.byDialog, id)
		}
	}
	delete(t.calls, c)
}

func (t *callTable) lookup(id string) *Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byDialog[id]
}

func (t *callTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.calls)
}

func (t *callTable) all() []*Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Call, 0, len(t.calls))
	for c := range t.calls {
		out = append(out, c)
	}
	return out
}

// find locates the call and leg an in-dialog request belongs to.
func (t *callTable) find(req *sip.Request) (*Call, media.Leg, bool) {
	if id, err := sip.DialogIDFromRequestUAS(req); err == nil {
		if c := t.lookup(id); c != nil {
			return c, media.LegA, true
		}
	}
	if id, err := sip.DialogIDFromRequestUAC(req); err == nil {
		if c := t.lookup(id); c != nil {
			return c, media.LegB, true
		}
	}
	return nil, 0, false
}

func (c *Call) dialogA() *sipgo.DialogServerSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a
}

func (c *Call) dialogB() *sipgo.DialogClientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b
}

type digit struct {
	leg media.Leg
	d   rune
}

// collectDigits starts keeping the digits the parties press: from the
// moment the party who must consent is connected, so a key pressed as the
// announcement starts is not lost.
func (c *Call) collectDigits() { c.collecting.Store(true) }

// onDTMF receives digits from the media session (its own goroutine).
func (c *Call) onDTMF(leg media.Leg, d rune) {
	if !c.collecting.Load() {
		return
	}
	select {
	case c.digits <- digit{leg, d}:
	default: // a full buffer: the consent decision is long made
	}
}
