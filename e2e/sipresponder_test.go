package e2e

import (
	"cmp"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/icholy/digest"
)

// responderOptions configures a sipResponder.
type responderOptions struct {
	// Code and Reason are the final response to every INVITE.
	Code   int
	Reason string
	// Challenge makes the responder demand digest authentication first, the
	// way Blackbox does: INVITE gets 407 (Proxy-Authenticate), REGISTER 401
	// (WWW-Authenticate), and the retry's credentials are checked with
	// github.com/icholy/digest (the package Blackbox's registrar uses),
	// including that the digest uri is the Request-URI. A bad digest gets 403.
	Challenge *digestCheck
}

// digestCheck is the one credential a challenging responder accepts.
type digestCheck struct {
	Realm, Username, Password string
	// Algorithms are offered as one challenge each, in order (default MD5).
	Algorithms []string
}

// authResult is what the responder concluded about one set of credentials.
type authResult struct {
	Method string
	Header string // as received
	URI    string // the digest uri
	RURI   string // the Request-URI it should equal
	Valid  bool
}

// sipResponder is a small Go UAS over UDP: every INVITE gets 100 Trying and
// a final response of the test's choosing, every REGISTER 200 OK, each
// after an optional digest challenge; ACKs are counted. It stands in for a
// refusing carrier (SIPp cannot take a response code from a variable, so
// this replaces a scenario file per code) and for a registrar whose digest
// check is the real one.
type sipResponder struct {
	conn *net.UDPConn
	opts responderOptions

	mu      sync.Mutex
	invites int // retransmissions included
	acks    int
	auths   []authResult

	wg sync.WaitGroup
}

// startSIPResponder listens on a free UDP port of 127.0.0.1 until the test ends.
func startSIPResponder(t *testing.T, opts responderOptions) *sipResponder {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("sip rejecter: %v", err)
	}
	r := &sipResponder{conn: conn, opts: opts}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() {
		conn.Close()
		r.wg.Wait()
	})
	return r
}

// Addr is HOST:PORT to send INVITEs to.
func (r *sipResponder) Addr() string { return r.conn.LocalAddr().String() }

// Counts returns how many INVITEs (with retransmissions) and ACKs arrived.
func (r *sipResponder) Counts() (invites, acks int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.invites, r.acks
}

// Auths returns every credential check made so far.
func (r *sipResponder) Auths() []authResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authResult(nil), r.auths...)
}

func (r *sipResponder) serve() {
	defer r.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		requestLine, _, _ := strings.Cut(msg, "\r\n")
		f := strings.Fields(requestLine)
		if len(f) < 3 {
			continue
		}
		switch f[0] {
		case "INVITE", "REGISTER":
			if f[0] == "INVITE" {
				r.mu.Lock()
				r.invites++
				r.mu.Unlock()
			}
			for _, resp := range r.answer(msg, f[0], f[1]) {
				if _, err := r.conn.WriteToUDP([]byte(resp), from); err != nil {
					return
				}
			}
		case "ACK":
			r.mu.Lock()
			r.acks++
			r.mu.Unlock()
		}
	}
}

func (r *sipResponder) answer(req, method, ruri string) []string {
	var out []string
	final := func() string {
		if method == "REGISTER" {
			extra := ""
			if c := requestHeader(req, "Contact"); c != "" {
				extra = "Contact: " + c + ";expires=" + cmp.Or(requestHeader(req, "Expires"), "3600") + "\r\n"
			}
			return sipResponse(req, 200, "OK", true, extra)
		}
		return sipResponse(req, r.opts.Code, r.opts.Reason, true, "")
	}
	if method == "INVITE" {
		out = append(out, sipResponse(req, 100, "Trying", false, ""))
	}
	c := r.opts.Challenge
	if c == nil {
		return append(out, final())
	}
	code, reason, challengeHdr, authzHdr := 407, "Proxy Authentication Required", "Proxy-Authenticate", "Proxy-Authorization"
	if method == "REGISTER" {
		code, reason, challengeHdr, authzHdr = 401, "Unauthorized", "WWW-Authenticate", "Authorization"
	}
	authz := requestHeader(req, authzHdr)
	if authz == "" {
		algs := c.Algorithms
		if len(algs) == 0 {
			algs = []string{"MD5"}
		}
		var extra strings.Builder
		for _, alg := range algs {
			ch := digest.Challenge{Realm: c.Realm, Nonce: "e2e" + alg + "nonce", Algorithm: alg, QOP: []string{"auth"}}
			extra.WriteString(challengeHdr + ": " + ch.String() + "\r\n")
		}
		return append(out, sipResponse(req, code, reason, true, extra.String()))
	}
	res := authResult{Method: method, Header: authz, RURI: ruri}
	if creds, err := digest.ParseCredentials(authz); err == nil {
		res.URI = creds.URI
		ch := &digest.Challenge{Realm: c.Realm, Nonce: creds.Nonce, Algorithm: creds.Algorithm, QOP: []string{"auth"}}
		want, err := digest.Digest(ch, digest.Options{
			Method: method, URI: creds.URI, Username: c.Username, Password: c.Password,
			Count: creds.Nc, Cnonce: creds.Cnonce,
		})
		res.Valid = err == nil && creds.Username == c.Username && creds.Realm == c.Realm &&
			creds.URI == ruri && want.Response == creds.Response
	}
	r.mu.Lock()
	r.auths = append(r.auths, res)
	r.mu.Unlock()
	if !res.Valid {
		return append(out, sipResponse(req, 403, "Forbidden", true, ""))
	}
	return append(out, final())
}

// requestHeader returns the first value of a header of a raw SIP message.
func requestHeader(msg, name string) string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	want := canonicalHeader(name)
	for _, line := range strings.Split(head, "\r\n")[1:] {
		if n, v, ok := strings.Cut(line, ":"); ok && canonicalHeader(n) == want {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// sipResponse builds a response to req per RFC 3261 §8.2.6: Via, From,
// Call-ID and CSeq copied, To copied with a tag added when tag is set;
// extra holds further header lines, each ending in CRLF.
func sipResponse(req string, code int, reason string, tag bool, extra string) string {
	head, _, _ := strings.Cut(req, "\r\n\r\n")
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, line := range strings.Split(head, "\r\n")[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch canonicalHeader(name) {
		case "via", "from", "call-id", "cseq":
			b.WriteString(line + "\r\n")
		case "to":
			if tag && !strings.Contains(value, ";tag=") {
				line += ";tag=responder"
			}
			b.WriteString(line + "\r\n")
		}
	}
	b.WriteString(extra)
	b.WriteString("Server: blackbox-e2e-responder\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}
