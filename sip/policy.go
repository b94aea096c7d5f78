package sip

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/blackbox-gw/blackbox/policy"
)

// refusePolicy answers a call the policy refused: 503 with Retry-After for
// limits that pass, 503 when the policy could not decide (fail closed), 403
// otherwise; the reason code travels in Reason and Warning headers. The
// policy engine has already audited and counted the denial.
func (s *Server) refusePolicy(tx sip.ServerTransaction, req *sip.Request, d policy.Decision) {
	code := sip.StatusForbidden
	hs := []sip.Header{
		sip.NewHeader("Reason", fmt.Sprintf(`SIP ;cause=%d ;text="%s"`, code, d.Reason)),
		warning(string(d.Reason) + ": " + d.Detail),
	}
	switch {
	case d.RetryAfter > 0:
		code = sip.StatusServiceUnavailable
		hs = append(hs, retryAfter(d.RetryAfter))
	case d.Reason == "policy_error":
		code = sip.StatusServiceUnavailable
		hs = append(hs, retryAfter(5*time.Second))
	}
	if code != sip.StatusForbidden {
		hs[0] = sip.NewHeader("Reason", fmt.Sprintf(`SIP ;cause=%d ;text="%s"`, code, d.Reason))
	}
	s.log.Info("call refused by policy", "reason", d.Reason, "detail", d.Detail, "code", code)
	s.respond(tx, req, code, reasonPhrase(code), hs...)
}

// presentedIdentity is the caller ID the rep's INVITE asks to present:
// the user part of P-Asserted-Identity, else P-Preferred-Identity, else
// From. Only the policy decides what is actually presented.
func presentedIdentity(req *sip.Request) string {
	for _, name := range []string{"P-Asserted-Identity", "P-Preferred-Identity"} {
		if h := req.GetHeader(name); h != nil {
			v := h.Value()
			if i, j := strings.IndexByte(v, '<'), strings.IndexByte(v, '>'); i >= 0 && j > i {
				v = v[i+1 : j]
			}
			var u sip.Uri
			if sip.ParseUri(v, &u) == nil && u.User != "" {
				return u.User
			}
		}
	}
	if f := req.From(); f != nil {
		return f.Address.User
	}
	return ""
}

// settlePolicy returns the call's slot and settles its spend from the
// talk time. Safe to call more than once.
func (c *Call) settlePolicy() {
	c.mu.Lock()
	t := c.ticket
	c.ticket = policy.Ticket{}
	rec := c.rec
	c.mu.Unlock()
	if t.ID == "" {
		return
	}
	o := policy.Outcome{Answered: !rec.AnswerAt.IsZero(), At: time.Now()}
	if o.Answered {
		o.Talk = o.At.Sub(rec.AnswerAt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.srv.opts.Policy.Finish(ctx, t, o); err != nil {
		c.log.Error("settle policy", "error", err)
	}
}

// enforceMaxDuration ends an answered call when its talk time runs out:
// the policy's longest call, or its spend reservation, which is extended
// while the caps allow.
func (c *Call) enforceMaxDuration() {
	c.mu.Lock()
	limit := c.ticket.MaxDuration
	c.mu.Unlock()
	if limit <= 0 {
		return
	}
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		timer := time.NewTimer(limit)
		defer timer.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-timer.C:
			}
			c.mu.Lock()
			t := c.ticket
			c.mu.Unlock()
			if t.ID == "" {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			more, err := c.srv.opts.Policy.Extend(ctx, &t)
			cancel()
			if err != nil {
				c.log.Error("extend talk time", "error", err)
			}
			if more <= 0 {
				c.log.Info("talk time exhausted", "reason", "spend_cap")
				c.hangup(endSpendCap, "system")
				return
			}
			c.mu.Lock()
			if c.ticket.ID != "" {
				c.ticket = t
			}
			c.mu.Unlock()
			timer.Reset(more)
		}
	}()
}
