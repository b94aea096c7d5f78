package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// A signed playback link is Blackbox's own URL
//
//	/v1/play/{recording}?t=TENANT&u=USER&e=EXPIRY&s=SIGNATURE
//
// where EXPIRY is Unix seconds and SIGNATURE the base64url HMAC-SHA256,
// under a key every node derives from the shared keyring, of the recording,
// tenant, user and expiry exactly as they appear in the URL. It plays
// without a token until it expires; a change to any byte is refused.

// linkDomain separates this HMAC's inputs from any other use of the key.
const linkDomain = "blackbox/playback-link/v1"

// link is a parsed playback link.
type link struct {
	recording, tenant, user, expiry, sig string
}

func sign(key []byte, recording, tenant, user, expiry string) string {
	m := hmac.New(sha256.New, key)
	for _, f := range []string{linkDomain, recording, tenant, user, expiry} {
		// NUL cannot occur in ids or digits, so the fields cannot be
		// re-split into another valid tuple.
		m.Write([]byte(f))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// idField accepts what store ids look like (UUIDs), nothing longer.
func idField(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

var errLinkInvalid = errorf(http.StatusForbidden, "link_invalid", "the playback link is invalid")

// parseLink reads a link's fields strictly: one value each, canonical
// forms only.
func parseLink(recording string, v url.Values) (link, error) {
	for _, k := range []string{"t", "u", "e", "s"} {
		if len(v[k]) != 1 {
			return link{}, errLinkInvalid
		}
	}
	l := link{recording: recording, tenant: v.Get("t"), user: v.Get("u"), expiry: v.Get("e"), sig: v.Get("s")}
	if !idField(l.recording) || !idField(l.tenant) || !idField(l.user) || len(l.sig) != 43 {
		return link{}, errLinkInvalid
	}
	if n, err := strconv.ParseInt(l.expiry, 10, 64); err != nil || n <= 0 || strconv.FormatInt(n, 10) != l.expiry {
		return link{}, errLinkInvalid
	}
	return l, nil
}

// verify checks the signature and then the expiry.
func (s *Server) verify(l link) error {
	want := sign(s.opts.LinkKey, l.recording, l.tenant, l.user, l.expiry)
	if !hmac.Equal([]byte(want), []byte(l.sig)) {
		return errLinkInvalid
	}
	exp, _ := strconv.ParseInt(l.expiry, 10, 64)
	if !s.opts.Now().Before(time.Unix(exp, 0)) {
		return errorf(http.StatusForbidden, "link_expired", "the playback link has expired; ask for a new one")
	}
	return nil
}

type linkBody struct {
	TTLSeconds int64 `json:"ttl_seconds"`
}

type linkView struct {
	URL       string    `json:"url"`
	Path      string    `json:"path"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) createLink(q *req) error {
	var b linkBody
	if err := q.decode(&b); err != nil {
		return err
	}
	rec, err := q.visibleRecording(q.r.PathValue("id"))
	if err != nil {
		return err
	}
	if rec.State != store.RecordingStored {
		return errorf(http.StatusConflict, "not_stored", "recording is %s; links are made once it is stored", rec.State)
	}
	ttl := s.opts.LinkTTL
	switch {
	case b.TTLSeconds < 0:
		return errorf(http.StatusBadRequest, "invalid_request", "ttl_seconds must be positive")
	case b.TTLSeconds > int64(s.opts.MaxLinkTTL/time.Second):
		return errorf(http.StatusBadRequest, "ttl_too_long", "ttl_seconds %d exceeds the maximum of %d", b.TTLSeconds, int64(s.opts.MaxLinkTTL/time.Second))
	case b.TTLSeconds > 0:
		ttl = time.Duration(b.TTLSeconds) * time.Second
	}
	exp := s.opts.Now().Add(ttl).Truncate(time.Second)
	e := strconv.FormatInt(exp.Unix(), 10)
	v := url.Values{"t": {q.p.TenantID()}, "u": {q.p.UserID()}, "e": {e}, "s": {sign(s.opts.LinkKey, rec.ID, q.p.TenantID(), q.p.UserID(), e)}}
	path := "/v1/play/" + rec.ID + "?" + v.Encode()
	// A link is a credential handed on: who made which, until when, is audited.
	if err := q.sc.Audit(q.r.Context(), "recording.link", "recording:"+rec.ID, map[string]any{
		"call_id": rec.CallID, "expires_at": exp.UTC().Format(time.RFC3339), "ttl_seconds": int64(ttl / time.Second)}); err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusCreated, linkView{URL: s.baseURL(q.r) + path, Path: path, ExpiresAt: exp.UTC()})
}

// playLink plays a recording for whoever holds a valid link. The link's
// tenant and user come from Blackbox's own signature, never from the
// client, so the gateway acts in that tenant for them; the user must still
// exist and, for a rep, still own the call.
func (s *Server) playLink(q *req) error {
	q.w.Header().Set("Referrer-Policy", "no-referrer")
	l, err := parseLink(q.r.PathValue("id"), q.r.URL.Query())
	if err != nil {
		return err
	}
	if err := s.verify(l); err != nil {
		return err
	}
	ctx := q.r.Context()
	sc := s.opts.DB.In(store.System(l.tenant))
	u, err := sc.UserByID(ctx, l.user)
	if errors.Is(err, store.ErrNotFound) {
		return errLinkInvalid
	}
	if err != nil {
		return err
	}
	rec, err := sc.Recording(ctx, l.recording)
	if err != nil {
		return err
	}
	if u.Role == store.RoleRep {
		c, err := sc.Call(ctx, rec.CallID)
		if errors.Is(err, store.ErrNotFound) || err == nil && c.UserID != u.ID {
			return errNotFound
		}
		if err != nil {
			return err
		}
	}
	return s.serveAudio(q, sc, rec, store.Access{UserID: u.ID, Username: u.Username, Path: store.AccessLink, Session: l.sig})
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("%q: want http(s)://HOST[:PORT][/PREFIX]", s)
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: no query or fragment", s)
	}
	return nil
}

// baseURL is where clients reach this API.
func (s *Server) baseURL(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return strings.TrimRight(s.opts.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || s.fromTrustedProxy(r) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: r.Host}).String()
}
