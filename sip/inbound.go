package sip

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/blackbox-gw/blackbox/media"
	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/store"
)

var errForkLost = errors.New("another contact answered")

// inbound routes a carrier's INVITE to a DID: the tenant comes from the trunk
// that matched the source address and owns the number; every registered
// contact of the number's user is rung in parallel and the first 200 wins.
func (s *Server) inbound(req *sip.Request, tx sip.ServerTransaction, trunks []store.Principal) {
	ctx := s.ctxOrBackground()
	dialled := req.Recipient.User
	if dialled == "" {
		if to := req.To(); to != nil {
			dialled = to.Address.User
		}
	}
	var (
		scope  *store.Scope
		tenant store.Tenant
		num    store.Number
		found  bool
	)
	for _, p := range trunks {
		sc := s.opts.DB.In(p)
		t, err := sc.Tenant(ctx)
		if err != nil {
			s.log.Error("inbound: tenant", "error", err)
			continue
		}
		d, err := policy.ParseDestination(dialled, t.DefaultCountry)
		if err != nil {
			continue
		}
		n, err := sc.Number(ctx, d.E164)
		if err == nil {
			scope, tenant, num, found = sc, t, n, true
			break
		}
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("inbound: number lookup", "error", err)
		}
	}
	if !found {
		s.respond(tx, req, sip.StatusNotFound, "Not Found")
		return
	}
	caller := "anonymous"
	if f := req.From(); f != nil && f.Address.User != "" {
		caller = f.Address.User
		if d, err := policy.ParseDestination(caller, tenant.DefaultCountry); err == nil {
			caller = d.E164
		}
	}

	callID := store.NewCallID()
	d, err := s.opts.Policy.DecideInbound(ctx, policy.InboundRequest{
		TenantID: tenant.ID, TenantName: tenant.Name, UserID: num.UserID, Username: num.Username,
		DefaultCountry: tenant.DefaultCountry, Caller: caller, Callee: num.Number, CallID: callID,
	})
	if err != nil {
		s.log.Error("inbound: policy", "error", err)
		s.respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
		return
	}
	if !d.Allow {
		s.refusePolicy(tx, req, d)
		return
	}
	a, err := s.dialogUAFor(req.Transport()).ReadInvite(req, tx)
	if err != nil {
		_ = s.opts.Policy.Finish(ctx, d.Ticket, policy.Outcome{})
		s.respond(tx, req, sip.StatusBadRequest, "Bad Request")
		return
	}
	rec := store.Call{ID: callID, UserID: num.UserID, Direction: store.Inbound, Caller: caller, Callee: num.Number,
		TrunkID: scope.Principal().TrunkID(), ACallID: req.CallID().Value(), InviteAt: time.Now(), Node: s.opts.Node}
	c := s.newCall(scope, rec)
	c.a = a
	c.ticket = d.Ticket
	c.consentMode = consentMode(d.Mode)
	if !s.admit(c, req, tx) {
		_ = s.opts.Policy.Finish(ctx, d.Ticket, policy.Outcome{})
		return
	}
	_ = a.Respond(sip.StatusTrying, "Trying", nil)

	bindings, err := scope.Bindings(ctx, num.UserID)
	if err != nil {
		c.log.Error("inbound: bindings", "error", err)
		c.failSetup(sip.StatusServiceUnavailable, "Service Unavailable", endFailed, 0, retryAfter(5*time.Second))
		return
	}
	if len(bindings) == 0 {
		c.failSetup(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", endNoRegistration, 0)
		return
	}
	if code := c.newMedia(); code != 0 {
		c.failSetup(code, reasonPhrase(code), endFailed, 0)
		return
	}
	// Blackbox answers the caller itself: the announcement comes before any
	// rep's phone rings, and a caller who refuses never reaches one.
	ansA, err := c.media.AnswerLocal(media.LegA, req.Body())
	if err != nil {
		code := sdpRefused(c, err)
		c.failSetup(code, reasonPhrase(code), endRejected, 0)
		return
	}
	c.media.SetBridge(false)
	c.collectDigits()
	if !c.establish(ansA) {
		return
	}
	c.media.ArmTimeout()
	if err := c.startRecording(ctx, time.Now()); err != nil {
		c.log.Error("call not recorded: ending it", "error", err)
		c.hangup("recording_failed", "system")
		return
	}
	if c.consentMode != consentNone {
		if result := c.runConsent(c.consentMode, media.LegA, media.LegA); !consented(result) {
			c.refuse(result)
			return
		}
	}
	offerB, err := c.media.LocalOffer(media.LegB)
	if err != nil {
		c.log.Error("offer for the rep's leg", "error", err)
		c.hangup(endFailed, "system")
		return
	}
	c.mu.Lock()
	c.lastSDP[media.LegB] = offerB
	c.mu.Unlock()
	stopRinging := c.ringback()
	winner, w := c.fork(req, bindings, num.Username, caller, offerB)
	stopRinging()
	if winner == nil {
		end := endUnreachable
		if !w.trunkSilent {
			_, _, end, _, _ = setupResult(w)
		}
		by := "system"
		if end == endCancel {
			by = "caller"
		}
		c.hangup(end, by)
		return
	}
	c.mu.Lock()
	c.b = winner
	c.mu.Unlock()
	c.update(func(r *store.Call) { r.BCallID = winner.InviteRequest.CallID().Value() })
	ackCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := winner.Ack(ackCtx); err != nil {
		c.log.Warn("ACK to leg b", "error", err)
	}
	c.srv.calls.bind(c, winner.ID)
	if _, err := c.media.Answer(media.LegB, winner.InviteResponse.Body()); err != nil {
		c.log.Warn("rep's answer SDP refused", "error", err)
		c.hangup(endFailed, "system")
		return
	}
	c.update(func(r *store.Call) { r.AnswerAt, r.BCode = time.Now(), 200 })
	c.enforceMaxDuration()
	c.media.SetBridge(true)
	c.log.Info("call bridged")
}

// ringback plays the ringback tone to the caller (already answered by
// Blackbox) until the returned stop is called.
func (c *Call) ringback() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	tone := media.Ringback()
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := c.media.Play(ctx, tone, media.LegA); err != nil {
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

type forkResult struct {
	b    *sipgo.DialogClientSession
	wait answerWait
}

// fork rings every binding in parallel. It returns the first contact that
// answered, or nil and the most telling failure. Losing contacts get CANCEL;
// one that answers too late is ACKed and hung up.
func (c *Call) fork(req *sip.Request, bindings []store.Binding, username, caller string, offer []byte) (*sipgo.DialogClientSession, answerWait) {
	s := c.srv
	ext := s.opts.ExternalHost.String()
	// The caller is already answered (and hears ringback): provisional
	// responses only mark the call as ringing.
	var ringOnce sync.Once
	relay := func(res *sip.Response) {
		ringOnce.Do(func() { c.update(func(r *store.Call) { r.RingingAt = time.Now() }) })
	}

	type leg struct {
		b      *sipgo.DialogClientSession
		cancel context.CancelCauseFunc
	}
	var legs []leg
	results := make(chan forkResult, len(bindings))
	for _, bd := range bindings {
		var contact sip.Uri
		if err := sip.ParseUri(bd.Contact, &contact); err != nil {
			c.log.Warn("unusable contact", "contact", bd.Contact, "error", err)
			continue
		}
		to := sip.Uri{Scheme: "sip", User: username, Host: ext}
		from := sip.Uri{Scheme: "sip", User: caller, Host: ext}
		inv := s.legRequest(contact, from, to, offer, bd.Transport, bd.Source, maxForwards(req))
		ctx, cancel := context.WithCancelCause(c.setupCtx)
		b, err := s.dialogUAFor(bd.Transport).WriteInvite(ctx, inv)
		if err != nil {
			c.log.Info("contact unreachable", "contact", bd.Contact, "source", bd.Source, "error", err)
			cancel(nil)
			continue
		}
		legs = append(legs, leg{b: b, cancel: cancel})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			results <- forkResult{b: b, wait: c.awaitAnswer(ctx, b, "", "", relay)}
		}()
	}
	if len(legs) == 0 {
		return nil, answerWait{trunkSilent: true}
	}

	var failures []answerWait
	for pending := len(legs); pending > 0; pending-- {
		r := <-results
		if r.wait.err == nil {
			for _, l := range legs {
				if l.b != r.b {
					l.cancel(errForkLost)
				}
			}
			if pending > 1 {
				s.wg.Add(1)
				go func(rest int) {
					defer s.wg.Done()
					c.reapForks(results, rest)
				}(pending - 1)
			}
			return r.b, answerWait{}
		}
		failures = append(failures, r.wait)
	}
	for _, l := range legs {
		l.cancel(nil)
	}
	return nil, bestFailure(failures)
}

// reapForks waits for the losing forks; any that answered anyway is hung up.
func (c *Call) reapForks(results <-chan forkResult, n int) {
	for ; n > 0; n-- {
		r := <-results
		res := r.b.InviteResponse
		if res == nil || !res.IsSuccess() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.b.Ack(ctx); err == nil {
			_ = r.b.Bye(ctx)
		}
		cancel()
	}
}

// bestFailure picks what the caller hears when no contact answered:
// a global decline wins, then busy, then the first failure.
func bestFailure(fs []answerWait) answerWait {
	best := fs[0]
	rank := func(w answerWait) int {
		var dr *sipgo.ErrDialogResponse
		if errors.As(w.err, &dr) {
			switch code := dr.Res.StatusCode; {
			case code >= 600:
				return 3
			case code == 486:
				return 2
			}
			return 1
		}
		return 0
	}
	for _, f := range fs[1:] {
		if rank(f) > rank(best) {
			best = f
		}
	}
	return best
}
