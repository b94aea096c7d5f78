package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/blackbox-gw/blackbox/media"
	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/store"
)

// outbound places a rep's call to the tenant's trunk. Tenant and user come
// from the digest credential alone; From, To and every other header of the
// rep's INVITE are only read as requests, never trusted.
func (s *Server) outbound(req *sip.Request, tx sip.ServerTransaction, acct store.SIPAccount) {
	ctx := s.ctxOrBackground()
	p := acct.Principal
	scope := s.opts.DB.In(p)
	fail := func(code int, reason string, hs ...sip.Header) { s.respond(tx, req, code, reason, hs...) }

	tenant, err := scope.Tenant(ctx)
	if err != nil {
		s.log.Error("outbound: tenant", "error", err)
		fail(sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
		return
	}
	user, err := scope.UserByID(ctx, p.UserID())
	if err != nil {
		s.log.Error("outbound: user", "error", err)
		fail(sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
		return
	}
	numbers, err := scope.NumbersOf(ctx, user.ID)
	if err != nil {
		s.log.Error("outbound: numbers", "error", err)
		fail(sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
		return
	}
	own := make([]string, len(numbers))
	for i, n := range numbers {
		own[i] = n.Number
	}
	callID := store.NewCallID()
	d, err := s.opts.Policy.DecideOutbound(ctx, policy.OutboundRequest{
		TenantID: p.TenantID(), TenantName: tenant.Name, UserID: user.ID, Username: user.Username, Role: p.Role(),
		DefaultCountry: tenant.DefaultCountry, Dialled: req.Recipient.User, CallerID: presentedIdentity(req),
		UserNumbers: own, DefaultCallerID: user.CallerID, CallID: callID,
	})
	if err != nil {
		s.log.Error("outbound: policy", "error", err)
		fail(sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
		return
	}
	if !d.Allow {
		s.refusePolicy(tx, req, d)
		return
	}
	release := func() { // the slot the decision took, if the call goes no further
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.opts.Policy.Finish(ctx, d.Ticket, policy.Outcome{})
	}
	if d.CallerIDCorrected {
		s.log.Info("outbound: presented caller ID replaced", "user", user.Username, "caller_id", d.CallerID)
	}
	trunks, err := scope.Trunks(ctx)
	if err != nil {
		release()
		s.log.Error("outbound: trunks", "error", err)
		fail(sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
		return
	}
	if len(trunks) == 0 {
		release()
		fail(sip.StatusServiceUnavailable, "Service Unavailable", warning("no trunk configured for this tenant"))
		return
	}
	s.placeOutbound(req, tx, scope, user, callID, d, trunks[0], release)
}

// placeOutbound runs an authorised outbound call from INVITE to answer.
func (s *Server) placeOutbound(req *sip.Request, tx sip.ServerTransaction, scope *store.Scope, user store.User,
	callID string, d policy.Decision, trunk store.Trunk, release func()) {
	ua := s.dialogUAFor(req.Transport())
	a, err := ua.ReadInvite(req, tx)
	if err != nil {
		release()
		s.respond(tx, req, sip.StatusBadRequest, "Bad Request")
		return
	}
	dest, callerID := d.Destination, d.CallerID
	rec := store.Call{ID: callID, UserID: user.ID, Direction: store.Outbound, Caller: callerID, Callee: dest.E164,
		TrunkID: trunk.ID, ACallID: req.CallID().Value(), InviteAt: time.Now(), Node: s.opts.Node}
	c := s.newCall(scope, rec)
	c.a = a
	c.ticket = d.Ticket
	c.consentMode = consentMode(d.Mode)
	if !s.admit(c, req, tx) {
		release()
		return
	}
	_ = a.Respond(sip.StatusTrying, "Trying", nil)

	offerB, code := c.openMedia(req.Body())
	if code != 0 {
		c.failSetup(code, reasonPhrase(code), endRejected, 0)
		return
	}
	host, portStr, _ := net.SplitHostPort(trunk.Address)
	port, _ := strconv.Atoi(portStr)
	recipient := sip.Uri{Scheme: "sip", User: dest.E164, Host: host, Port: port}
	if trunk.Transport == "tcp" {
		recipient.UriParams = sip.NewParams()
		recipient.UriParams.Add("transport", "tcp")
	}
	ext := s.opts.ExternalHost.String()
	from := sip.Uri{Scheme: "sip", User: callerID, Host: ext}
	inv := s.legRequest(recipient, from, sip.Uri{Scheme: "sip", User: dest.E164, Host: host}, offerB, trunk.Transport, "", maxForwards(req))
	inv.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+from.String()+">"))

	b, err := s.dialogUAFor(trunk.Transport).WriteInvite(c.setupCtx, inv)
	if err != nil {
		c.log.Warn("INVITE to trunk failed", "trunk", trunk.Name, "error", err)
		c.failSetup(sip.StatusServiceUnavailable, "Service Unavailable", endTrunkUnreachable, 0, retryAfter(30*time.Second))
		return
	}
	c.mu.Lock()
	c.b = b
	c.lastSDP[media.LegB] = offerB
	c.mu.Unlock()
	c.update(func(r *store.Call) { r.BCallID = inv.CallID().Value() })

	w := c.awaitAnswer(c.setupCtx, b, trunk.Username, trunk.Password, c.relayProvisional)
	if w.err != nil {
		code, reason, end, bCode, hs := setupResult(w)
		c.failSetup(code, reason, end, bCode, hs...)
		return
	}
	c.answered()
}

// admit registers a new call, or refuses it (the node is draining, or the
// store cannot record it). An admitted call holds the server's wait group
// until finish, so Drain waits for it.
func (s *Server) admit(c *Call, req *sip.Request, tx sip.ServerTransaction) bool {
	ctx := s.ctxOrBackground()
	s.admitMu.Lock()
	if s.draining.Load() {
		s.admitMu.Unlock()
		_ = c.a.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil, retryAfter(30*time.Second))
		return false
	}
	s.wg.Add(1)
	s.admitMu.Unlock()
	if err := c.scope.InsertCall(ctx, c.rec); err != nil {
		s.wg.Done()
		c.log.Error("insert call record", "error", err)
		_ = c.a.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil, retryAfter(5*time.Second))
		return false
	}
	s.calls.add(c)
	s.calls.bind(c, c.a.ID)
	s.metrics.callsActive.WithLabelValues(string(c.rec.Direction)).Inc()
	c.log.Info("call started", "caller", c.rec.Caller, "callee", c.rec.Callee)
	return true
}

// newMedia anchors the call's RTP: two port pairs. A non-zero code is the
// response leg A gets.
func (c *Call) newMedia() int {
	ms, err := c.srv.opts.Media.NewSession(media.SessionOptions{
		ID:           c.rec.ID,
		OnTimeout:    c.onMediaTimeout,
		OnDTMF:       c.onDTMF,
		DeferTimeout: true, // armed on answer: ringing is not silence
	})
	if err != nil {
		c.log.Error("media session", "error", err)
		return sip.StatusServiceUnavailable
	}
	c.mu.Lock()
	c.media = ms
	c.mu.Unlock()
	return 0
}

// openMedia anchors the call's RTP and turns leg A's offer into leg B's.
// A non-zero code is the response leg A gets.
func (c *Call) openMedia(offer []byte) ([]byte, int) {
	if code := c.newMedia(); code != 0 {
		return nil, code
	}
	out, err := c.media.Offer(media.LegA, offer)
	if err != nil {
		return nil, sdpRefused(c, err)
	}
	return out, 0
}

// sdpRefused logs an SDP error from leg A and maps it to a response code.
func sdpRefused(c *Call, err error) int {
	c.log.Info("leg a offer refused", "error", err)
	if errors.Is(err, media.ErrBadSDP) || errors.Is(err, media.ErrNoCodec) {
		return sip.StatusNotAcceptableHere
	}
	return sip.StatusServiceUnavailable
}

// relayProvisional passes 180/183 from leg B to leg A; early-media SDP goes
// through the media session so leg A's early audio is anchored too.
func (c *Call) relayProvisional(res *sip.Response) {
	c.mu.Lock()
	first := c.rec.RingingAt.IsZero()
	c.mu.Unlock()
	if first {
		c.update(func(r *store.Call) { r.RingingAt = time.Now() })
	}
	if body := res.Body(); len(body) > 0 {
		ans, err := c.media.Answer(media.LegB, body)
		if err != nil {
			c.log.Info("early media SDP refused", "error", err)
			_ = c.a.Respond(sip.StatusRinging, "Ringing", nil)
			return
		}
		_ = c.a.Respond(sip.StatusSessionInProgress, "Session Progress", ans, sip.NewHeader("Content-Type", "application/sdp"))
		return
	}
	if res.StatusCode == sip.StatusRinging || first {
		_ = c.a.Respond(sip.StatusRinging, "Ringing", nil)
	}
}

// answered completes an outbound call once leg B has sent 2xx: recording
// starts, the rep is answered, the callee (and the rep) hear the consent
// announcement, and only a consent outcome bridges the two.
func (c *Call) answered() {
	c.mu.Lock()
	bs := c.b
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bs.Ack(ctx); err != nil {
		c.log.Warn("ACK to leg b", "error", err)
	}
	c.srv.calls.bind(c, bs.ID)
	answerAt := time.Now()
	c.update(func(r *store.Call) { r.AnswerAt, r.BCode = answerAt, 200 })
	// Until consent, neither party hears the other: only the announcement.
	c.media.SetBridge(c.consentMode == consentNone)
	c.collectDigits()
	if err := c.startRecording(ctx, answerAt); err != nil {
		c.log.Error("call not recorded: ending it", "error", err)
		c.abortAnswered(sip.StatusServiceUnavailable, "recording_failed")
		return
	}
	ans, err := c.media.Answer(media.LegB, bs.InviteResponse.Body())
	if err != nil {
		c.log.Warn("leg b answer SDP refused", "error", err)
		c.abortAnswered(sip.StatusNotAcceptableHere, endFailed)
		return
	}
	if !c.establish(ans) {
		return
	}
	c.media.ArmTimeout()
	c.enforceMaxDuration()
	if c.consentMode != consentNone {
		result := c.runConsent(c.consentMode, media.LegB, media.LegA, media.LegB)
		if !consented(result) {
			c.refuse(result)
			return
		}
		c.media.SetBridge(true)
	}
	c.log.Info("call bridged")
}

// abortAnswered ends a call whose leg B answered but leg A cannot be.
func (c *Call) abortAnswered(code int, end string) {
	c.mu.Lock()
	c.established = true // so hangup BYEs leg B
	c.mu.Unlock()
	_ = c.a.Respond(code, reasonPhrase(code), nil)
	c.mu.Lock()
	c.rec.ACode = code
	c.mu.Unlock()
	c.hangup(end, "system")
}

// refuse ends a call whose consent prompt did not end in consent; nothing
// of the party is recorded after a refusal.
func (c *Call) refuse(result store.ConsentResult) {
	c.stopRecording()
	if result == store.ConsentHangupDuringPrompt {
		return // the hangup already ended the call
	}
	c.hangup(consentEnd(result), "system")
}

// onMediaTimeout hangs up a call whose media went silent.
func (c *Call) onMediaTimeout(leg media.Leg) {
	c.mu.Lock()
	up := c.established
	c.mu.Unlock()
	if !up {
		return
	}
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		c.log.Info("no media from leg", "leg", fmt.Sprint(leg))
		c.hangup(endRTPTimeout, "system")
	}()
}
