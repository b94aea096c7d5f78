package e2e

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/icholy/digest"
)

// rejecterOptions configures a sipRejecter.
type rejecterOptions struct {
	Code   int
	Reason string
	// Challenge makes the rejecter demand digest authentication first, the
	// way Blackbox challenges a rep: 407 with Proxy-Authenticate, and the
	// retry's Proxy-Authorization checked with github.com/icholy/digest
	// (the package Blackbox's registrar uses). A bad digest gets 403.
	Challenge *digestCheck
}

// digestCheck is the one credential a challenging rejecter accepts.
type digestCheck struct {
	Realm, Username, Password string
	// Algorithms are offered as one challenge each, in order (default MD5).
	Algorithms []string
}

// authResult is what the rejecter concluded about one Proxy-Authorization.
type authResult struct {
	Header string // as received
	URI    string // the digest uri
	RURI   string // the Request-URI it should equal
	Valid  bool
}

// sipRejecter is a Go stand-in for a peer that refuses every call: each
// INVITE gets 100 Trying and a final response of the test's choosing (after
// an optional digest challenge), and ACKs are counted. SIPp cannot take a
// response code from a variable, so this small UAS replaces a scenario file
// per code.
type sipRejecter struct {
	conn *net.UDPConn
	opts rejecterOptions

	mu      sync.Mutex
	invites int // retransmissions included
	acks    int
	auths   []authResult

	wg sync.WaitGroup
}

// startSIPRejecter listens on a free UDP port of 127.0.0.1 until the test ends.
func startSIPRejecter(t *testing.T, opts rejecterOptions) *sipRejecter {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("sip rejecter: %v", err)
	}
	r := &sipRejecter{conn: conn, opts: opts}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() {
		conn.Close()
		r.wg.Wait()
	})
	return r
}

// Addr is HOST:PORT to send INVITEs to.
func (r *sipRejecter) Addr() string { return r.conn.LocalAddr().String() }

// Counts returns how many INVITEs (with retransmissions) and ACKs arrived.
func (r *sipRejecter) Counts() (invites, acks int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.invites, r.acks
}

// Auths returns every credential check made so far.
func (r *sipRejecter) Auths() []authResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authResult(nil), r.auths...)
}

func (r *sipRejecter) serve() {
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
		case "INVITE":
			r.mu.Lock()
			r.invites++
			r.mu.Unlock()
			for _, resp := range r.answer(msg, f[1]) {
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

func (r *sipRejecter) answer(req, ruri string) []string {
	out := []string{sipResponse(req, 100, "Trying", false, "")}
	c := r.opts.Challenge
	if c == nil {
		return append(out, sipResponse(req, r.opts.Code, r.opts.Reason, true, ""))
	}
	authz := requestHeader(req, "Proxy-Authorization")
	if authz == "" {
		algs := c.Algorithms
		if len(algs) == 0 {
			algs = []string{"MD5"}
		}
		var extra strings.Builder
		for _, alg := range algs {
			ch := digest.Challenge{Realm: c.Realm, Nonce: "e2e" + alg + "nonce", Algorithm: alg, QOP: []string{"auth"}}
			extra.WriteString("Proxy-Authenticate: " + ch.String() + "\r\n")
		}
		return append(out, sipResponse(req, 407, "Proxy Authentication Required", true, extra.String()))
	}
	res := authResult{Header: authz, RURI: ruri}
	if creds, err := digest.ParseCredentials(authz); err == nil {
		res.URI = creds.URI
		ch := &digest.Challenge{Realm: c.Realm, Nonce: creds.Nonce, Algorithm: creds.Algorithm, QOP: []string{"auth"}}
		want, err := digest.Digest(ch, digest.Options{
			Method: "INVITE", URI: creds.URI, Username: c.Username, Password: c.Password,
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
	return append(out, sipResponse(req, r.opts.Code, r.opts.Reason, true, ""))
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
				line += ";tag=rejecter"
			}
			b.WriteString(line + "\r\n")
		}
	}
	b.WriteString(extra)
	b.WriteString("Server: blackbox-e2e-rejecter\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}
