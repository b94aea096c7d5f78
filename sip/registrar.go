package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/blackbox-gw/blackbox/store"
)

// handleRegister implements the registrar (RFC 3261 section 10.3): digest
// authentication, several contacts per user, Expires bounds with 423,
// unregister, query, and the real source address of each REGISTER so inbound
// calls reach a phone behind NAT (over its own TCP connection where it has one).
func (s *Server) handleRegister(req *sip.Request, tx sip.ServerTransaction) {
	ctx := s.ctxOrBackground()
	acct, ok := s.authenticate(ctx, req, tx, registrarAuth)
	if !ok {
		return
	}
	// A user registers its own address of record only.
	if to := req.To(); to == nil || to.Address.User != acct.Principal.Username() {
		s.respond(tx, req, sip.StatusForbidden, "Forbidden", warning("address of record does not match the credentials"))
		return
	}

	reg, code, reason := s.parseRegistration(req, acct.Principal)
	if code != 0 {
		var hs []sip.Header
		if code == sip.StatusIntervalToBrief {
			hs = append(hs, sip.NewHeader("Min-Expires", strconv.Itoa(s.opts.Register.MinExpires)))
		}
		s.respond(tx, req, code, reason, hs...)
		return
	}
	scope := s.opts.DB.In(acct.Principal)
	bindings, err := scope.Register(ctx, reg)
	switch {
	case errors.Is(err, store.ErrOutOfOrder):
		s.respond(tx, req, sip.StatusInternalServerError, "Server Internal Error", warning("REGISTER out of order"))
		return
	case err != nil:
		s.log.Error("registrar: store", "user", acct.Principal.Username(), "error", err)
		s.respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
		return
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	now := time.Now()
	for _, b := range bindings {
		uri := sip.Uri{}
		if err := sip.ParseUri(b.Contact, &uri); err != nil {
			continue
		}
		c := &sip.ContactHeader{Address: uri, Params: sip.NewParams()}
		c.Params.Add("expires", strconv.Itoa(int(b.ExpiresAt.Sub(now).Round(time.Second)/time.Second)))
		res.AppendHeader(c)
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	s.writeResponse(tx, req, res)
	if len(reg.Updates) > 0 || reg.RemoveAll {
		s.log.Info("registered", "user", acct.Principal.Username(), "contacts", len(bindings), "source", reg.Source, "transport", reg.Transport)
	}
}

// parseRegistration turns the Contact and Expires headers into a store
// Registration; a non-zero code is the error response to send.
func (s *Server) parseRegistration(req *sip.Request, p store.Principal) (store.Registration, int, string) {
	cseq := req.CSeq()
	callID := req.CallID()
	if cseq == nil || callID == nil {
		return store.Registration{}, sip.StatusBadRequest, "Bad Request"
	}
	src, err := sourceAddr(req)
	if err != nil {
		return store.Registration{}, sip.StatusBadRequest, "Bad Request"
	}
	reg := store.Registration{
		UserID:      p.UserID(),
		CallID:      callID.Value(),
		CSeq:        cseq.SeqNo,
		Source:      src.String(),
		Transport:   sip.NetworkToLower(req.Transport()),
		Node:        s.opts.Node,
		MaxContacts: s.opts.Register.MaxContacts,
	}
	if ua := req.GetHeader("User-Agent"); ua != nil {
		reg.UserAgent = truncate(ua.Value(), 200)
	}
	headerExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			return reg, sip.StatusBadRequest, "Bad Request"
		}
		headerExpires = n
	}
	contacts := req.GetHeaders("Contact")
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return reg, sip.StatusBadRequest, "Bad Request"
		}
		if c.Address.Wildcard {
			// "Contact: *" must stand alone with Expires: 0 (section 10.2.2).
			if len(contacts) != 1 || headerExpires != 0 {
				return reg, sip.StatusBadRequest, "Bad Request"
			}
			reg.RemoveAll = true
			return reg, 0, ""
		}
		expires := headerExpires
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return reg, sip.StatusBadRequest, "Bad Request"
			}
			expires = n
		}
		if expires < 0 {
			expires = s.opts.Register.DefaultExpires
		}
		if expires > 0 && expires < s.opts.Register.MinExpires {
			return reg, sip.StatusIntervalToBrief, "Interval Too Brief"
		}
		if expires > s.opts.Register.MaxExpires {
			expires = s.opts.Register.MaxExpires
		}
		uri := c.Address
		if uri.Host == "" || (uri.Scheme != "sip" && uri.Scheme != "sips") {
			return reg, sip.StatusBadRequest, "Bad Request"
		}
		reg.Updates = append(reg.Updates, store.ContactUpdate{Contact: contactKey(uri), Expires: time.Duration(expires) * time.Second})
	}
	return reg, 0, ""
}

// contactKey is the canonical stored form of a contact URI: the URI without
// header parameters, so a phone refreshing its binding matches it.
func contactKey(u sip.Uri) string {
	u.Headers = nil
	return u.String()
}

// authKind is where digest credentials travel: a registrar's 401 with
// WWW-Authenticate/Authorization, or a proxy's 407 with the Proxy- pair.
type authKind struct {
	code                       int
	reason, challenge, answers string
}

var (
	registrarAuth = authKind{sip.StatusUnauthorized, "Unauthorized", "WWW-Authenticate", "Authorization"}
	proxyAuth     = authKind{sip.StatusProxyAuthRequired, "Proxy Authentication Required", "Proxy-Authenticate", "Proxy-Authorization"}
)

// authenticate checks req's credentials and answers it itself unless they
// hold: a challenge (stale=true for an expired nonce), 403 for a wrong
// password or an unknown user alike, 503 when the store cannot say.
func (s *Server) authenticate(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, k authKind) (store.SIPAccount, bool) {
	acct, outcome, err := s.auth.check(ctx, req, k.answers)
	if err != nil {
		s.log.Error("credential lookup failed", "method", req.Method, "error", err)
		s.respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
		return store.SIPAccount{}, false
	}
	switch outcome {
	case authChallenge, authStale:
		res := sip.NewResponseFromRequest(req, k.code, k.reason, nil)
		for _, v := range s.auth.challenges(outcome == authStale) {
			res.AppendHeader(sip.NewHeader(k.challenge, v))
		}
		s.writeResponse(tx, req, res)
		return store.SIPAccount{}, false
	case authFailed:
		s.metrics.authFailures.Inc()
		s.respond(tx, req, sip.StatusForbidden, "Forbidden")
		return store.SIPAccount{}, false
	}
	return acct, true
}

func warning(text string) sip.Header {
	return sip.NewHeader("Warning", fmt.Sprintf(`399 blackbox "%s"`, strings.ReplaceAll(text, `"`, "'")))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
