package sip

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/blackbox-gw/blackbox/media"
	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/store"
)

// handleInvite dispatches a dialog-creating INVITE: without credentials and
// from a trunk's address it is an inbound call; anything else is a rep who
// must authenticate.
func (s *Server) handleInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil {
		if _, ok := to.Params.Get("tag"); ok {
			s.handleReinvite(req, tx)
			return
		}
	}
	if code, reason, hs := s.screenInvite(req); code != 0 {
		s.respond(tx, req, code, reason, hs...)
		return
	}
	ctx := s.ctxOrBackground()
	src, err := sourceAddr(req)
	if err != nil {
		s.respond(tx, req, sip.StatusBadRequest, "Bad Request")
		return
	}
	// A request carrying credentials is a rep's, wherever it comes from; only
	// an unauthenticated INVITE is matched against the trunks' addresses.
	if req.GetHeader("Proxy-Authorization") == nil {
		trunks, err := s.opts.DB.TrunksFrom(ctx, src.Addr())
		switch {
		case err == nil:
			s.inbound(req, tx, trunks)
			return
		case !errors.Is(err, store.ErrUnknownSource):
			s.log.Error("inbound route lookup", "error", err)
			s.respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
			return
		}
		if s.strangerToDID(ctx, req, src) {
			s.respond(tx, req, sip.StatusForbidden, "Forbidden", warning("source matches no trunk"))
			return
		}
	}
	acct, ok := s.authenticate(ctx, req, tx, proxyAuth)
	if !ok {
		return
	}
	s.outbound(req, tx, acct)
}

// strangerToDID reports an INVITE to one of the gateway's DIDs from an
// address that is neither a trunk's nor a registered phone's: a carrier Blackbox
// does not know, refused outright rather than challenged like a rep.
func (s *Server) strangerToDID(ctx context.Context, req *sip.Request, src netip.AddrPort) bool {
	d, err := policy.ParseDestination(req.Recipient.User, "US")
	if err != nil || d.Emergency {
		return false
	}
	if ok, err := s.opts.DB.NumberExists(ctx, d.E164); err != nil || !ok {
		return false
	}
	registered, err := s.opts.DB.HasBindingFrom(ctx, src.Addr())
	return err == nil && !registered
}

// screenInvite refuses what no call can be built from, before any lookup.
func (s *Server) screenInvite(req *sip.Request) (int, string, []sip.Header) {
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		return sip.StatusTooManyHops, "Too Many Hops", nil
	}
	if s.draining.Load() {
		return sip.StatusServiceUnavailable, "Service Unavailable", []sip.Header{retryAfter(30 * time.Second)}
	}
	if s.calls.count() >= s.opts.MaxCalls {
		return sip.StatusServiceUnavailable, "Service Unavailable", []sip.Header{retryAfter(5 * time.Second)}
	}
	if len(req.Body()) == 0 {
		return sip.StatusNotAcceptableHere, "Not Acceptable Here", []sip.Header{warning("an SDP offer is required in the INVITE")}
	}
	if ct := req.ContentType(); ct == nil || !strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/sdp") {
		return sip.StatusUnsupportedMediaType, "Unsupported Media Type", []sip.Header{sip.NewHeader("Accept", "application/sdp")}
	}
	if req.Contact() == nil || req.CallID() == nil || req.CSeq() == nil || req.From() == nil {
		return sip.StatusBadRequest, "Bad Request", nil
	}
	return 0, "", nil
}

// maxForwards continues the loop budget of leg A on leg B, so two gateways
// pointed at each other cannot loop forever.
func maxForwards(req *sip.Request) int {
	if mf := req.MaxForwards(); mf != nil && int(mf.Val()) <= 70 {
		return int(mf.Val()) - 1
	}
	return 70
}

// legRequest builds an INVITE for leg B. Nothing of leg A's headers is
// copied: Blackbox is a B2BUA, not a proxy.
func (s *Server) legRequest(recipient sip.Uri, from, to sip.Uri, sdp []byte, transport, destination string, maxFwd int) *sip.Request {
	req := sip.NewRequest(sip.INVITE, recipient)
	req.SetTransport(strings.ToUpper(transport))
	if destination != "" {
		req.SetDestination(destination)
	}
	fromH := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fromH.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(fromH)
	req.AppendHeader(&sip.ToHeader{Address: to, Params: sip.NewParams()})
	mf := sip.MaxForwardsHeader(uint32(maxFwd))
	req.AppendHeader(&mf)
	req.AppendHeader(allowHeader())
	req.AppendHeader(sip.NewHeader("User-Agent", s.opts.UserAgent))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(sdp)
	if strings.EqualFold(transport, "udp") && s.udpLocal.IP != nil {
		// Send from the listening socket: the peer's replies, and later its
		// requests, must come back to the port it knows (NAT pinholes).
		s.udpLocal.Copy(&req.Laddr)
	}
	return req
}

// answerWait is the outcome of waiting for leg B to answer.
type answerWait struct {
	err         error
	trunkSilent bool // no response at all within TrunkTimeout
}

// awaitAnswer waits for a 2xx on b, relaying provisional responses, while
// watching the caller's CANCEL, the ring timeout and a silent peer.
func (c *Call) awaitAnswer(parent context.Context, b *sipgo.DialogClientSession, username, password string, relay func(*sip.Response)) answerWait {
	s := c.srv
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var responded, silent atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		trunk := time.NewTimer(s.opts.TrunkTimeout)
		ring := time.NewTimer(s.opts.RingTimeout)
		defer trunk.Stop()
		defer ring.Stop()
		for {
			select {
			case <-stop:
				return
			case <-c.a.Context().Done():
				cancel(errCallerCancelled)
				return
			case <-trunk.C:
				if !responded.Load() {
					silent.Store(true)
					// Nothing answered: there is no transaction to CANCEL.
					cancel(sipgo.WaitAnswerForceCancelErr)
					return
				}
			case <-ring.C:
				cancel(errRingTimeout)
				return
			}
		}
	}()
	err := b.WaitAnswer(ctx, sipgo.AnswerOptions{
		Username: username,
		Password: password,
		OnResponse: func(res *sip.Response) error {
			responded.Store(true)
			if res.IsProvisional() && res.StatusCode > 100 && relay != nil {
				relay(res)
			}
			return nil
		},
	})
	if err != nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return answerWait{err: err, trunkSilent: silent.Load()}
}

// failure maps leg B's final response to what leg A hears and the end reason.
func failure(code int) (int, string, string) {
	switch code {
	case 486, 600:
		return 486, "Busy Here", endBusy
	case 480, 408:
		return 480, "Temporarily Unavailable", endNoAnswer
	case 404, 604, 484, 410:
		return 404, "Not Found", endRejected
	case 403:
		return 403, "Forbidden", endRejected
	case 603:
		return 603, "Decline", endRejected
	case 488, 606:
		return 488, "Not Acceptable Here", endRejected
	case 487:
		return 487, "Request Terminated", endCancel
	case 401, 407:
		// The trunk refused Blackbox's own credentials: an operator problem,
		// not something the rep can act on.
		return 503, "Service Unavailable", endTrunkUnreachable
	}
	if code >= 500 {
		return 503, "Service Unavailable", endFailed
	}
	return 480, "Temporarily Unavailable", endFailed
}

// setupResult turns a failed awaitAnswer into leg A's response.
func setupResult(w answerWait) (code int, reason, end string, bCode int, hs []sip.Header) {
	var dr *sipgo.ErrDialogResponse
	switch {
	case w.trunkSilent:
		return 503, "Service Unavailable", endTrunkUnreachable, 0, []sip.Header{retryAfter(30 * time.Second), warning("trunk did not respond")}
	case errors.As(w.err, &dr):
		code, reason, end = failure(dr.Res.StatusCode)
		if code == 503 {
			if ra := dr.Res.GetHeader("Retry-After"); ra != nil {
				hs = append(hs, sip.NewHeader("Retry-After", ra.Value()))
			}
		}
		return code, reason, end, dr.Res.StatusCode, hs
	case errors.Is(w.err, errCallerCancelled):
		return 487, "Request Terminated", endCancel, 0, nil
	case errors.Is(w.err, errRingTimeout):
		return 480, "Temporarily Unavailable", endNoAnswer, 0, nil
	}
	var ec endCause
	if errors.As(w.err, &ec) {
		if ec.reason == endShutdown {
			return 503, "Service Unavailable", endShutdown, 0, []sip.Header{retryAfter(30 * time.Second)}
		}
		return 480, "Temporarily Unavailable", ec.reason, 0, nil
	}
	return 503, "Service Unavailable", endTrunkUnreachable, 0, []sip.Header{retryAfter(30 * time.Second)}
}

// failSetup ends a call that never reached answer on leg A.
func (c *Call) failSetup(code int, reason, end string, bCode int, hs ...sip.Header) {
	if c.a != nil && c.a.Context().Err() == nil {
		if err := c.a.Respond(code, reason, nil, hs...); err != nil {
			c.log.Debug("final response to leg a", "code", code, "error", err)
		} else {
			c.srv.metrics.responses.WithLabelValues("INVITE", codeClass(code)).Inc()
		}
	} else if end == "" || end == endFailed {
		end = endCancel
		code = 487
	}
	by := "system"
	if end == endCancel {
		by = "caller"
	}
	c.finish(end, by, code, bCode)
}

// establish answers leg A with sdp and marks the call up. It returns false
// when the call ended instead (leg A cancelled meanwhile, or no ACK).
func (c *Call) establish(sdp []byte) bool {
	if err := c.a.RespondSDP(sdp); err != nil {
		c.log.Info("answer to leg a failed", "error", err)
		c.mu.Lock()
		c.established = true // so hangup BYEs leg B
		c.mu.Unlock()
		c.hangup(endCancel, "caller")
		return false
	}
	c.srv.metrics.responses.WithLabelValues("INVITE", "2xx").Inc()
	c.mu.Lock()
	c.established = true
	c.lastSDP[media.LegA] = sdp
	c.rec.ACode = 200
	c.mu.Unlock()
	if c.a.LoadState() != sip.DialogStateConfirmed {
		c.hangup(endNoAck, "system")
		return false
	}
	var ec endCause
	if errors.As(context.Cause(c.setupCtx), &ec) {
		// Something ended the call while leg A was being answered.
		c.hangup(ec.reason, ec.by)
		return false
	}
	return true
}
