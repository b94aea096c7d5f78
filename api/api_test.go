package api

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/blackbox-gw/blackbox/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTokenExpiryAndRevocation(t *testing.T) {
	f := newFixture(t)
	w := f.do("otto", "POST", "/v1/tokens", map[string]any{"username": "ann", "name": "softphone-app", "ttl_seconds": 60})
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body.String())
	}
	tok := decodeInto[tokenView](t, w)
	if !strings.HasPrefix(tok.Token, store.TokenPrefix) || tok.Username != "ann" || tok.CreatedBy != "user:otto" ||
		!tok.ExpiresAt.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("token %+v", tok)
	}
	f.tokens["ann-app"] = tok.Token
	if w := f.do("ann-app", "GET", "/v1/me", nil); w.Code != 200 {
		t.Fatalf("fresh token: %d", w.Code)
	}
	// The secret is shown once: never listed.
	if w := f.do("otto", "GET", "/v1/tokens", nil); w.Code != 200 || strings.Contains(w.Body.String(), tok.Token) || strings.Contains(w.Body.String(), `"token"`) {
		t.Fatalf("token list shows a secret: %s", w.Body.String())
	}
	f.clock.Advance(time.Minute)
	if w := f.do("ann-app", "GET", "/v1/me", nil); w.Code != 401 {
		t.Fatalf("expired token: %d", w.Code)
	}

	// Revocation takes effect on the next request.
	if w := f.do("mia", "GET", "/v1/me", nil); w.Code != 200 {
		t.Fatal(w.Code)
	}
	mia := decodeInto[list[tokenView]](t, f.do("otto", "GET", "/v1/tokens?user=mia", nil))
	if len(mia.Items) != 1 {
		t.Fatalf("mia's tokens: %+v", mia)
	}
	if w := f.do("otto", "DELETE", "/v1/tokens/"+mia.Items[0].ID, nil); w.Code != 200 || decodeInto[tokenView](t, w).RevokedBy != "user:otto" {
		t.Fatalf("revoke: %d %s", w.Code, w.Body.String())
	}
	if w := f.do("mia", "GET", "/v1/me", nil); w.Code != 401 || errorCode(t, w) != "unauthenticated" {
		t.Fatalf("revoked token: %d", w.Code)
	}
	// An owner revoking its own token locks itself out, as asked.
	for _, body := range []string{`{"username": "ann", "ttl_seconds": -5}`, `{"username": "ann", "ttl_seconds": 99999999999}`, `{"username": "nobody"}`} {
		if w := f.do("otto", "POST", "/v1/tokens", rawBody(body)); w.Code != 400 && w.Code != 404 {
			t.Errorf("create %s: %d", body, w.Code)
		}
	}
}

func TestPaginationAndFilters(t *testing.T) {
	f := newFixture(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, f.record([]string{"ann", "ben"}[i%2], f.clock.Now().Add(time.Duration(i)*time.Minute), 10).call.ID)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		l := decodeInto[list[CallView]](t, f.do("mia", "GET", "/v1/calls?limit=2&cursor="+cursor, nil))
		for _, c := range l.Items {
			got = append(got, c.ID)
		}
		if l.NextCursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = l.NextCursor
	}
	if strings.Join(got, ",") != strings.Join([]string{ids[4], ids[3], ids[2], ids[1], ids[0]}, ",") {
		t.Fatalf("pages %v, want newest first %v", got, ids)
	}
	ann := decodeInto[list[CallView]](t, f.do("mia", "GET", "/v1/calls?user=ann", nil))
	if len(ann.Items) != 3 {
		t.Fatalf("ann's calls: %d", len(ann.Items))
	}
	since := f.clock.Now().Add(150 * time.Second).Format(time.RFC3339)
	if l := decodeInto[list[CallView]](t, f.do("mia", "GET", "/v1/calls?since="+since, nil)); len(l.Items) != 2 {
		t.Fatalf("since: %d", len(l.Items))
	}
	if l := decodeInto[list[RecordingView]](t, f.do("ann", "GET", "/v1/recordings", nil)); len(l.Items) != 3 {
		t.Fatalf("ann's recordings: %d", len(l.Items))
	}
}

func TestExport(t *testing.T) {
	f := newFixture(t)
	a := f.record("ann", f.clock.Now(), 10)
	evil := store.Call{ID: store.NewCallID(), UserID: f.users["ben"].ID, Direction: store.Inbound, Caller: "=HYPERLINK(\"http://x\")",
		Callee: "+14155550100", ACallID: "x", InviteAt: f.clock.Now()}
	if err := f.acme.InsertCall(context.Background(), evil); err != nil {
		t.Fatal(err)
	}
	w := f.do("mia", "GET", "/v1/export/calls", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-ndjson" || !strings.Contains(w.Header().Get("Content-Disposition"), "attachment") {
		t.Fatalf("ndjson: %d %v", w.Code, w.Header())
	}
	sc := bufio.NewScanner(strings.NewReader(w.Body.String()))
	var lines []exportCall
	for sc.Scan() {
		var c exportCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, c)
	}
	if len(lines) != 2 || lines[1].ID != a.call.ID || len(lines[1].Recordings) != 1 || lines[1].Recordings[0].SHA256 != a.rec.SHA256 {
		t.Fatalf("ndjson lines: %+v", lines)
	}
	w = f.do("otto", "GET", "/v1/export/calls?format=csv", nil)
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "id" {
		t.Fatalf("csv: %v %v", rows, err)
	}
	if rows[1][3] != `'=HYPERLINK("http://x")` || rows[1][4] != "+14155550100" || rows[2][9] != a.rec.ID {
		t.Fatalf("csv cells: %q", rows[1:])
	}
	ev, _ := f.acme.AuditEvents(context.Background(), store.AuditFilter{Action: "export.calls"})
	if len(ev) != 2 || ev[1].Actor != "user:mia" || ev[0].Details["format"] != "csv" {
		t.Fatalf("export audit: %+v", ev)
	}
	if w := f.do("mia", "GET", "/v1/export/calls?format=xlsx", nil); w.Code != 400 {
		t.Fatalf("bad format: %d", w.Code)
	}
}

func TestClientAddressAndLinkBase(t *testing.T) {
	f := newFixture(t)
	f.srv.opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	r := httptest.NewRequest("GET", "/", nil)
	for _, c := range []struct{ peer, xff, want string }{
		{"192.0.2.7:5000", "203.0.113.9", "192.0.2.7"},                           // untrusted peer: header ignored
		{"10.1.1.1:5000", "203.0.113.9", "203.0.113.9"},                          // one proxy
		{"10.1.1.1:5000", "198.51.100.66, 203.0.113.9, 10.2.2.2", "203.0.113.9"}, // spoofed left part skipped
		{"10.1.1.1:5000", "", "10.1.1.1"},
		{"[::ffff:10.1.1.1]:5000", "not-an-ip", "10.1.1.1"},
	} {
		r.RemoteAddr = c.peer
		r.Header.Set("X-Forwarded-For", c.xff)
		if got := f.srv.clientAddr(r); got != c.want {
			t.Errorf("peer %s xff %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	r.RemoteAddr = "10.1.1.1:5000"
	r.Host = "bb.example.com"
	r.Header.Set("X-Forwarded-Proto", "https")
	if got := f.srv.baseURL(r); got != "https://bb.example.com" {
		t.Fatalf("base behind proxy: %s", got)
	}
	f.srv.opts.BaseURL = "https://public.example.com/"
	if got := f.srv.baseURL(r); got != "https://public.example.com" {
		t.Fatalf("configured base: %s", got)
	}
	for _, bad := range []string{"ftp://x", "https://", "https://x/?q=1", "::"} {
		if _, err := New(Options{DB: f.db, Objects: f.objs, LinkKey: f.key, BaseURL: bad}); err == nil {
			t.Errorf("BaseURL %q accepted", bad)
		}
	}
	if _, err := New(Options{DB: f.db, Objects: f.objs, LinkKey: f.key[:16]}); err == nil {
		t.Error("a short link key accepted")
	}
	if _, err := New(Options{DB: f.db, Objects: f.objs, LinkKey: f.key, LinkTTL: time.Hour, MaxLinkTTL: time.Minute}); err == nil {
		t.Error("MaxLinkTTL below LinkTTL accepted")
	}
}

// Metrics label routes by pattern, never by the path a client sent.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	a := f.record("ann", f.clock.Now(), 10)
	f.do("ann", "GET", "/v1/calls/"+a.call.ID, nil)
	f.do("ann", "GET", "/v1/calls/no-such-call", nil)
	f.do("ann", "GET", "/v1/recordings/"+a.rec.ID+"/audio", nil)
	f.do("ann", "GET", "/v1/whatever/"+a.call.ID, nil)
	f.do("", "GET", "/v1/me", nil)
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
				if strings.Contains(l.GetValue(), a.call.ID) || strings.Contains(l.GetValue(), "no-such-call") {
					t.Errorf("%s has a raw path label %q", mf.GetName(), l.GetValue())
				}
			}
			switch mf.GetName() {
			case "blackbox_http_requests_total":
				seen[labels["route"]+" "+labels["code"]] += value(m)
			case "blackbox_playbacks_total":
				seen["playbacks "+labels["path"]] = value(m)
			case "blackbox_http_request_duration_seconds":
				seen["duration "+labels["route"]] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for k, want := range map[string]float64{
		"GET /v1/calls/{id} 200": 1, "GET /v1/calls/{id} 404": 1, "GET /v1/recordings/{id}/audio 200": 1,
		"unmatched 404": 1, "GET /v1/me 401": 1, "playbacks proxy": 1, "playbacks link": 0, "duration GET /v1/calls/{id}": 2,
	} {
		if seen[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, seen[k], want, seen)
		}
	}
}

func value(m *dto.Metric) float64 { return m.GetCounter().GetValue() }

func TestSuspensions(t *testing.T) {
	f := newFixture(t)
	id := f.suspend("ann")
	l := decodeInto[list[suspensionView]](t, f.do("mia", "GET", "/v1/suspensions?user=ann", nil))
	if len(l.Items) != 1 || l.Items[0].ID != id || l.Items[0].Cause != "attempts" || l.Items[0].LiftedAt != nil {
		t.Fatalf("suspensions: %+v", l)
	}
	if w := f.do("mia", "GET", "/v1/suspensions?user=nobody", nil); w.Code != 400 {
		t.Fatalf("unknown user: %d", w.Code)
	}
	w := f.do("mia", "POST", "/v1/suspensions/lift", map[string]string{"username": "ann"})
	lifted := decodeInto[list[suspensionView]](t, w)
	if w.Code != 200 || len(lifted.Items) != 1 || lifted.Items[0].LiftedBy != "user:mia" {
		t.Fatalf("lift: %d %+v", w.Code, lifted)
	}
	if l := decodeInto[list[suspensionView]](t, f.do("mia", "GET", "/v1/suspensions", nil)); len(l.Items) != 0 {
		t.Fatalf("still in force: %+v", l)
	}
	if l := decodeInto[list[suspensionView]](t, f.do("otto", "GET", "/v1/suspensions?lifted=true", nil)); len(l.Items) != 1 || l.Items[0].LiftedAt == nil {
		t.Fatalf("history: %+v", l)
	}
	// Nothing in force for the tenant as a whole: lifting it lifts nothing.
	if l := decodeInto[list[suspensionView]](t, f.do("otto", "POST", "/v1/suspensions/lift", nil)); len(l.Items) != 0 {
		t.Fatalf("tenant lift: %+v", l)
	}
	ev, _ := f.acme.AuditEvents(context.Background(), store.AuditFilter{Action: "policy.lift"})
	if len(ev) != 1 || ev[0].Actor != "user:mia" || ev[0].Object != "user:ann" {
		t.Fatalf("audit: %+v", ev)
	}
}
