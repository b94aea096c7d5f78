package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/blackbox-gw/blackbox/media"
)

// In-dialog requests: each names its call by dialog id; Blackbox answers on
// the leg it arrived on and, where the other party must know (BYE, a new
// SDP offer), sends its own request on the other leg.

func (s *Server) handleAck(req *sip.Request, tx sip.ServerTransaction) {
	c, leg, ok := s.calls.find(req)
	if !ok {
		return // stray ACK: nothing to answer
	}
	if leg == media.LegA {
		if a := c.dialogA(); a != nil {
			_ = a.ReadAck(req, tx)
		}
	}
	if ch, ok := c.acks.LoadAndDelete(ackKey(leg, req.CSeq().SeqNo)); ok {
		close(ch.(chan struct{}))
	}
}

func (s *Server) handleBye(req *sip.Request, tx sip.ServerTransaction) {
	c, leg, ok := s.calls.find(req)
	if !ok {
		s.respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	var err error
	if leg == media.LegA {
		err = c.dialogA().ReadBye(req, tx)
	} else {
		err = c.dialogB().ReadBye(req, tx)
	}
	if err != nil {
		s.respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	s.metrics.responses.WithLabelValues("BYE", "2xx").Inc()
	c.hangup(endBye, c.party(leg))
}

// handleCancel sees only CANCELs that matched no INVITE transaction: the
// transaction layer answers the others (200, then 487 to the INVITE).
func (s *Server) handleCancel(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
}

func (s *Server) handleInfo(req *sip.Request, tx sip.ServerTransaction) {
	if _, _, ok := s.calls.find(req); !ok {
		s.respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	// DTMF travels as RFC 4733 in the media; INFO bodies are acknowledged
	// and not relayed.
	s.respond(tx, req, sip.StatusOK, "OK")
}

func (s *Server) handleReinvite(req *sip.Request, tx sip.ServerTransaction) {
	s.renegotiate(req, tx, true)
}

func (s *Server) handleUpdate(req *sip.Request, tx sip.ServerTransaction) {
	s.renegotiate(req, tx, false)
}

// renegotiate handles re-INVITE and UPDATE: hold, resume, codec or address
// changes. A new offer is anchored through the media session and sent to the
// other leg as Blackbox's own request; its answer comes back the same way.
func (s *Server) renegotiate(req *sip.Request, tx sip.ServerTransaction, invite bool) {
	c, leg, ok := s.calls.find(req)
	if !ok {
		s.respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	c.mu.Lock()
	up, ended := c.established, c.ended
	c.mu.Unlock()
	if ended {
		s.respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if !up || !c.offerMu.TryLock() {
		// Glare or an offer still in flight (RFC 3261 section 14.2).
		s.respond(tx, req, sip.StatusRequestPending, "Request Pending", retryAfter(time.Second))
		return
	}
	defer c.offerMu.Unlock()
	if err := c.dialog(leg).ReadRequest(req, tx); err != nil {
		s.respond(tx, req, sip.StatusInternalServerError, "Server Internal Error", retryAfter(time.Second))
		return
	}
	body := req.Body()
	if len(body) == 0 {
		// A refresh without an offer (session timers): repeat the last
		// description unchanged; the peer's ACK carries the same back.
		c.mu.Lock()
		sdp := c.lastSDP[leg]
		c.mu.Unlock()
		if !invite {
			sdp = nil
		}
		c.respondInDialog(tx, req, leg, sdp, invite)
		return
	}
	if ct := req.ContentType(); ct == nil || !strings.HasPrefix(strings.ToLower(ct.Value()), "application/sdp") {
		s.respond(tx, req, sip.StatusUnsupportedMediaType, "Unsupported Media Type", sip.NewHeader("Accept", "application/sdp"))
		return
	}
	offer, err := c.media.Offer(leg, body)
	if err != nil {
		s.respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here", warning(err.Error()))
		return
	}
	other := leg.Other()
	method := sip.UPDATE
	if invite {
		method = sip.INVITE
	}
	ctx, cancel := context.WithTimeout(s.ctxOrBackground(), 32*time.Second)
	defer cancel()
	res, err := c.request(ctx, other, method, offer)
	if err != nil {
		c.log.Warn("re-offer to other leg failed", "method", method, "error", err)
		s.respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(time.Second))
		return
	}
	if !res.IsSuccess() {
		code := res.StatusCode
		if code != sip.StatusRequestPending && code != sip.StatusNotAcceptableHere {
			code = sip.StatusNotAcceptableHere
		}
		s.respond(tx, req, code, reasonPhrase(code))
		return
	}
	answer, err := c.media.Answer(other, res.Body())
	if err != nil {
		s.respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here", warning(err.Error()))
		return
	}
	c.mu.Lock()
	c.lastSDP[other] = offer
	c.lastSDP[leg] = answer
	c.mu.Unlock()
	c.respondInDialog(tx, req, leg, answer, invite)
}

// request sends an in-dialog INVITE or UPDATE with an SDP offer on leg and
// returns the final response; a 2xx to INVITE is ACKed here.
func (c *Call) request(ctx context.Context, leg media.Leg, method sip.RequestMethod, sdp []byte) (*sip.Response, error) {
	target, err := c.remoteTarget(leg)
	if err != nil {
		return nil, err
	}
	req := sip.NewRequest(method, target)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(allowHeader())
	req.SetBody(sdp)
	d := c.dialog(leg)
	res, err := d.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if method == sip.INVITE && res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, target)
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.ACK})
		if err := d.WriteRequest(ack); err != nil {
			return nil, fmt.Errorf("ACK re-INVITE: %w", err)
		}
	}
	return res, nil
}

// respondInDialog answers a re-INVITE or UPDATE with 200. For INVITE it
// then waits for the ACK in the background (retransmitting over UDP), so the
// offer/answer exchange, complete once the answer is sent, does not hold the
// call's next negotiation hostage to the ACK's arrival.
func (c *Call) respondInDialog(tx sip.ServerTransaction, req *sip.Request, leg media.Leg, sdp []byte, invite bool) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", sdp)
	if len(sdp) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	ua := c.srv.dialogUAFor(req.Transport())
	res.AppendHeader(sip.HeaderClone(&ua.ContactHDR))
	if !invite {
		c.srv.writeResponse(tx, req, res)
		return
	}
	acked := make(chan struct{})
	key := ackKey(leg, req.CSeq().SeqNo)
	c.acks.Store(key, acked)
	c.srv.writeResponse(tx, req, res)
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		defer c.acks.Delete(key)
		c.awaitAck(tx, res, acked, sip.IsReliable(req.Transport()))
	}()
}

// awaitAck waits up to 64*T1 for the ACK of a re-INVITE's 2xx,
// retransmitting it over unreliable transports; without an ACK the session
// is ended (RFC 3261 section 13.3.1.4).
func (c *Call) awaitAck(tx sip.ServerTransaction, res *sip.Response, acked <-chan struct{}, reliable bool) {
	deadline := time.NewTimer(64 * sip.T1)
	defer deadline.Stop()
	interval := sip.T1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	for {
		select {
		case <-acked:
			return
		case <-c.done:
			return
		case <-deadline.C:
			c.hangup(endNoAck, "system")
			return
		case <-retransmit.C:
			if !reliable {
				_ = tx.Respond(res)
			}
			interval = min(2*interval, sip.T2)
			retransmit.Reset(interval)
		}
	}
}

func ackKey(leg media.Leg, cseq uint32) string { return fmt.Sprintf("%d/%d", leg, cseq) }

// inDialog is what both dialog roles offer for in-dialog requests.
type inDialog interface {
	ReadRequest(req *sip.Request, tx sip.ServerTransaction) error
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	WriteRequest(req *sip.Request) error
}

func (c *Call) dialog(leg media.Leg) inDialog {
	if leg == media.LegA {
		return c.dialogA()
	}
	return c.dialogB()
}

// remoteTarget is where in-dialog requests on leg go (the peer's Contact).
func (c *Call) remoteTarget(leg media.Leg) (sip.Uri, error) {
	if leg == media.LegA {
		if a := c.dialogA(); a != nil {
			if ct := a.InviteRequest.Contact(); ct != nil {
				return *ct.Address.Clone(), nil
			}
		}
	} else if b := c.dialogB(); b != nil && b.InviteResponse != nil {
		if ct := b.InviteResponse.Contact(); ct != nil {
			return *ct.Address.Clone(), nil
		}
	}
	return sip.Uri{}, errors.New("no remote target on leg")
}
