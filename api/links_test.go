package api

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

type linkAnswer struct {
	URL       string    `json:"url"`
	Path      string    `json:"path"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (f *fixture) link(username, recID string, body any) linkAnswer {
	f.t.Helper()
	w := f.do(username, "POST", "/v1/recordings/"+recID+"/links", body)
	if w.Code != http.StatusCreated {
		f.t.Fatalf("make link: %d %s", w.Code, w.Body.String())
	}
	return decodeInto[linkAnswer](f.t, w)
}

// alter returns s with byte i replaced by another character of the same
// kind, so the result still looks well formed and only the signature can
// tell.
func alter(s string, i int) string {
	b := []byte(s)
	switch c := b[i]; {
	case c == '-':
		b[i] = 'a'
	case c == '9', c == 'z', c == 'Z', c == '_':
		b[i] = '0'
	default:
		b[i] = c + 1
	}
	return string(b)
}

func TestSignedLinks(t *testing.T) {
	f := newFixture(t)
	ann := f.record("ann", f.clock.Now(), 4000)
	bea := f.record("bea", f.clock.Now(), 4000)

	l := f.link("ann", ann.rec.ID, nil)
	if want := f.clock.Now().Add(DefaultLinkTTL); !l.ExpiresAt.Equal(want) {
		t.Fatalf("expires %s, want default TTL %s", l.ExpiresAt, want)
	}
	if !strings.HasPrefix(l.URL, "http://example.com/v1/play/"+ann.rec.ID+"?") || !strings.HasSuffix(l.URL, l.Path) {
		t.Fatalf("link %q (path %q)", l.URL, l.Path)
	}
	w := f.do("", "GET", l.Path, nil)
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), ann.audio) || w.Header().Get("Content-Type") != "audio/wav" ||
		w.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("valid link: %d %s, %d bytes", w.Code, w.Header(), w.Body.Len())
	}

	// Any byte of recording, tenant, user, expiry or signature altered.
	u, _ := url.Parse(l.Path)
	v := u.Query()
	refused := func(what, path string) {
		t.Helper()
		w := f.do("", "GET", path, nil)
		if w.Code != http.StatusForbidden || errorCode(t, w) != "link_invalid" {
			t.Errorf("%s: %d %.200q", what, w.Code, w.Body.String())
		}
	}
	for i := range ann.rec.ID {
		refused("recording byte "+strconv.Itoa(i), "/v1/play/"+alter(ann.rec.ID, i)+"?"+v.Encode())
	}
	for _, k := range []string{"t", "u", "e", "s"} {
		for i := range v.Get(k) {
			a := url.Values{}
			for kk := range v {
				a.Set(kk, v.Get(kk))
			}
			a.Set(k, alter(v.Get(k), i))
			refused(k+" byte "+strconv.Itoa(i), "/v1/play/"+ann.rec.ID+"?"+a.Encode())
		}
	}
	refused("a later expiry", "/v1/play/"+ann.rec.ID+"?"+strings.Replace(v.Encode(), "e="+v.Get("e"), "e="+strconv.FormatInt(l.ExpiresAt.Unix()+3600, 10), 1))
	refused("expiry with a leading zero", "/v1/play/"+ann.rec.ID+"?"+strings.Replace(v.Encode(), "e=", "e=0", 1))
	refused("signature twice", l.Path+"&s="+v.Get("s"))
	refused("no signature", "/v1/play/"+ann.rec.ID+"?"+strings.Replace(v.Encode(), "&s="+v.Get("s"), "", 1))
	refused("no query", "/v1/play/"+ann.rec.ID)

	// Another tenant: the link's tenant swapped, or a signature over another
	// tenant's recording in this one.
	swapped := url.Values{"t": {f.users["bea"].TenantID}, "u": {v.Get("u")}, "e": {v.Get("e")}, "s": {v.Get("s")}}
	refused("tenant swapped", "/v1/play/"+ann.rec.ID+"?"+swapped.Encode())
	refused("other tenant's recording", "/v1/play/"+bea.rec.ID+"?"+v.Encode())
	e := v.Get("e")
	forged := url.Values{"t": {v.Get("t")}, "u": {v.Get("u")}, "e": {e}, "s": {sign(f.key, bea.rec.ID, v.Get("t"), v.Get("u"), e)}}
	if w := f.do("", "GET", "/v1/play/"+bea.rec.ID+"?"+forged.Encode(), nil); w.Code != http.StatusNotFound {
		t.Errorf("a correctly signed link names another tenant's recording: %d", w.Code)
	}
	if beaLink := f.link("bea", bea.rec.ID, nil); f.do("", "GET", beaLink.Path, nil).Code != 200 {
		t.Error("globex's own link does not play")
	}

	// A link made for a rep's own recording never plays a colleague's.
	ben := f.record("ben", f.clock.Now(), 100)
	forged = url.Values{"t": {v.Get("t")}, "u": {v.Get("u")}, "e": {e}, "s": {sign(f.key, ben.rec.ID, v.Get("t"), v.Get("u"), e)}}
	if w := f.do("", "GET", "/v1/play/"+ben.rec.ID+"?"+forged.Encode(), nil); w.Code != http.StatusNotFound {
		t.Errorf("rep's link on a colleague's recording: %d", w.Code)
	}

	// Expiry: it plays up to its last second and never after.
	f.clock.Advance(DefaultLinkTTL - time.Second)
	if w := f.do("", "GET", l.Path, nil); w.Code != 200 {
		t.Fatalf("link refused before it expired: %d", w.Code)
	}
	f.clock.Advance(time.Second)
	if w := f.do("", "GET", l.Path, nil); w.Code != http.StatusForbidden || errorCode(t, w) != "link_expired" {
		t.Fatalf("expired link: %d %s", w.Code, w.Body.String())
	}

	// Lifetimes: asked for, capped, validated.
	short := f.link("ann", ann.rec.ID, map[string]any{"ttl_seconds": 60})
	if !short.ExpiresAt.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("ttl 60: expires %s", short.ExpiresAt)
	}
	for body, code := range map[string]string{
		`{"ttl_seconds": 3601}`: "ttl_too_long", `{"ttl_seconds": -1}`: "invalid_request", `{"ttl": 60}`: "invalid_json",
	} {
		w := f.do("ann", "POST", "/v1/recordings/"+ann.rec.ID+"/links", rawBody(body))
		if w.Code != 400 || errorCode(t, w) != code {
			t.Errorf("link %s: %d %s", body, w.Code, w.Body.String())
		}
	}
	// Links are audited.
	ev, _ := f.acme.AuditEvents(t.Context(), store.AuditFilter{Action: "recording.link"})
	if len(ev) != 2 || ev[0].Actor != "user:ann" || ev[0].Object != "recording:"+ann.rec.ID {
		t.Fatalf("link audit: %+v", ev)
	}
}

// One listening session through a link, made of several Range requests,
// is exactly one access-log entry.
func TestLinkSessionIsOneAccessEntry(t *testing.T) {
	f := newFixture(t)
	ann := f.record("ann", f.clock.Now(), 8000)
	l := f.link("ann", ann.rec.ID, nil)
	var sent int64
	for i, rng := range []string{"bytes=0-", "bytes=0-1023", "bytes=1024-8191", "bytes=30000-"} {
		w := f.do("", "GET", l.Path, nil, "Range", rng, "User-Agent", "TestPlayer/1")
		if w.Code != http.StatusPartialContent {
			t.Fatalf("range %d: %d", i, w.Code)
		}
		sent += int64(w.Body.Len())
		f.clock.Advance(30 * time.Second)
	}
	if w := f.do("", "HEAD", l.Path, nil); w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("HEAD: %d, %d bytes", w.Code, w.Body.Len())
	}
	entries := f.accessLog(f.acme, store.AccessFilter{RecordingID: ann.rec.ID})
	if len(entries) != 1 {
		t.Fatalf("%d access entries, want 1: %+v", len(entries), entries)
	}
	e := entries[0]
	if e.Path != store.AccessLink || e.UserID != f.users["ann"].ID || e.Username != "ann" || e.CallID != ann.call.ID ||
		e.Requests != 4 || e.Bytes != sent || e.RemoteAddr != "192.0.2.1" || e.UserAgent != "TestPlayer/1" ||
		!e.LastAt.Equal(e.StartedAt.Add(90*time.Second)) {
		t.Fatalf("entry %+v (sent %d)", e, sent)
	}
	// Listening through the API as well is another session, by another path.
	if w := f.do("ann", "GET", "/v1/recordings/"+ann.rec.ID+"/audio", nil); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if n := len(f.accessLog(f.acme, store.AccessFilter{RecordingID: ann.rec.ID})); n != 2 {
		t.Fatalf("%d entries after a proxy listen, want 2", n)
	}
	if got := counterValue(f.srv.met.playbacks.WithLabelValues("link")); got != 1 {
		t.Fatalf("link playbacks %v, want 1", got)
	}
	if got := counterValue(f.srv.met.playbacks.WithLabelValues("proxy")); got != 1 {
		t.Fatalf("proxy playbacks %v, want 1", got)
	}
	// The manager reads it per call and per user.
	for _, path := range []string{"/v1/calls/" + ann.call.ID + "/access", "/v1/access?user=ann"} {
		got := decodeInto[list[accessView]](t, f.do("mia", "GET", path, nil))
		if len(got.Items) != 2 || got.Items[0].Path != "proxy" || got.Items[1].Path != "link" || got.Items[1].Requests != 4 {
			t.Fatalf("%s: %+v", path, got)
		}
	}
}
