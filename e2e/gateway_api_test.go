package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// The control-plane API of issue 6 through the real `blackbox serve`:
// tokens made with the CLI, calls placed with SIPp, recordings read back
// over http.listen.

// apiClient is one token holder (token "" sends none).
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func (g *Gateway) apiAs(t *testing.T, token string) apiClient {
	return apiClient{t: t, base: "http://" + g.HTTPAddr, token: token}
}

// do sends a request to path (or a full URL) and returns the response
// with its body read.
func (c apiClient) do(method, path string, body string, header map[string]string) (*http.Response, []byte) {
	c.t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = c.base + path
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, data
}

// status is the status code of a GET.
func (c apiClient) status(path string) int {
	c.t.Helper()
	resp, _ := c.do(http.MethodGet, path, "", nil)
	return resp.StatusCode
}

// getJSON GETs path, requires 200 and decodes the body into v.
func (c apiClient) getJSON(path string, v any) {
	c.t.Helper()
	resp, body := c.do(http.MethodGet, path, "", nil)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		c.t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

type apiCall struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Callee string `json:"callee"`
}

type apiRecording struct {
	ID     string `json:"id"`
	CallID string `json:"call_id"`
	State  string `json:"state"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size_bytes"`
}

type apiAccess struct {
	RecordingID string `json:"recording_id"`
	Username    string `json:"username"`
	Path        string `json:"path"`
	Requests    int64  `json:"requests"`
	Bytes       int64  `json:"bytes"`
}

func (c apiClient) calls() []apiCall {
	var l struct{ Items []apiCall }
	c.getJSON("/v1/calls", &l)
	return l.Items
}

func (c apiClient) storedRecordings() []apiRecording {
	var l struct{ Items []apiRecording }
	c.getJSON("/v1/recordings", &l)
	var out []apiRecording
	for _, r := range l.Items {
		if r.State == "stored" {
			out = append(out, r)
		}
	}
	return out
}

func (c apiClient) access(callID string) []apiAccess {
	var l struct{ Items []apiAccess }
	c.getJSON("/v1/calls/"+callID+"/access", &l)
	return l.Items
}

// createToken runs `blackbox token create` and returns the secret.
func createToken(t *testing.T, gw *Gateway, tenant, user string) string {
	t.Helper()
	tok := strings.TrimSpace(gw.CLI(t, "", "token", "create", "--tenant", tenant, "--user", user, "--ttl", "1h"))
	if tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("token create printed %q, want the token alone", tok)
	}
	return tok
}

// storedObject returns the bytes of the file: object whose SHA-256 is sum.
func storedObject(t *testing.T, gw *Gateway, sum string) []byte {
	t.Helper()
	for _, p := range recordingFiles(t, gw) {
		if fileSHA256(t, p) == sum {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
	t.Fatalf("no stored object has SHA-256 %s", sum)
	return nil
}

// byCallee picks the call to callee and its recording.
func byCallee(t *testing.T, calls []apiCall, recs []apiRecording, callee string) (apiCall, apiRecording) {
	t.Helper()
	for _, c := range calls {
		if c.Callee != callee {
			continue
		}
		for _, r := range recs {
			if r.CallID == c.ID {
				return c, r
			}
		}
		t.Fatalf("call %s to %s has no stored recording among %+v", c.ID, callee, recs)
	}
	t.Fatalf("no call to %s among %+v", callee, calls)
	return apiCall{}, apiRecording{}
}

func callees(calls []apiCall) string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Callee)
	}
	return strings.Join(out, ",")
}

const (
	bobNumber  = "+12125550105"
	ginaNumber = "+13125550107"
	// The callees tell the three calls apart.
	aliceCallee = "+12125550201"
	bobCallee   = "+12125550202"
	ginaCallee  = "+12125550203"
)

// TestGatewayAPI: reps alice and bob and manager mia of acme, rep gina of
// globex, each call out once. Over the API: a rep lists only its own
// calls, the manager the team's, and nobody sees across tenants (404,
// like an id that does not exist); a ranged playback returns the stored
// object's exact bytes and logs one access entry for the listening
// session; a signed link plays without a token and refuses any alteration.
func TestGatewayAPI(t *testing.T) {
	t.Parallel()
	fx := provisionCallFixture(t, GatewayOptions{})
	gw := fx.gw
	fx.addRep(t, fxTenant, "bob", "rep", bobNumber)
	gw.AddUser(t, fxTenant, "mia", repPassword("mia"), "manager")
	fx.addTenant(t, "globex")
	fx.addRep(t, "globex", "gina", "rep", ginaNumber)
	alice := gw.apiAs(t, createToken(t, gw, fxTenant, fxRep))
	mia := gw.apiAs(t, createToken(t, gw, fxTenant, "mia"))
	gina := gw.apiAs(t, createToken(t, gw, "globex", "gina"))
	gw.Start(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fx.answeringCarrier(t, ctx)
	hold := SIPpOptions{Pause: 1500 * time.Millisecond}
	reps := []*SIPp{
		startSIPp(t, ctx, "uac-call", fx.rep(SIPpOptions{Service: aliceCallee, Pause: hold.Pause})),
		startSIPp(t, ctx, "uac-call", fx.repAs("bob", bobCallee, bobNumber, hold)),
		startSIPp(t, ctx, "uac-call", fx.repAs("gina", ginaCallee, ginaNumber, hold)),
	}
	for _, r := range reps {
		r.RequireSuccess(t)
	}
	if !eventually(15*time.Second, func() bool {
		return len(mia.storedRecordings()) == 2 && len(gina.storedRecordings()) == 1
	}) {
		t.Fatalf("recordings never stored: acme %+v, globex %+v", mia.storedRecordings(), gina.storedRecordings())
	}
	team, acmeRecs := mia.calls(), mia.storedRecordings()
	callA, recA := byCallee(t, team, acmeRecs, aliceCallee)
	callB, recB := byCallee(t, team, acmeRecs, bobCallee)
	callC, recC := byCallee(t, gina.calls(), gina.storedRecordings(), ginaCallee)

	t.Run("calls by role and tenant", func(t *testing.T) {
		if got := alice.calls(); len(got) != 1 || got[0].ID != callA.ID {
			t.Errorf("rep alice lists calls to %s, want only her own to %s", callees(got), aliceCallee)
		}
		if len(team) != 2 {
			t.Errorf("manager mia lists calls to %s, want alice's and bob's", callees(team))
		}
		if got := gina.calls(); len(got) != 1 || got[0].ID != callC.ID {
			t.Errorf("globex's gina lists calls to %s, want only her own", callees(got))
		}
		for _, tc := range []struct {
			who  apiClient
			name string
			path string
			want int
		}{
			{alice, "alice, her call", "/v1/calls/" + callA.ID, 200},
			{alice, "alice, bob's call", "/v1/calls/" + callB.ID, 404},
			{alice, "alice, bob's audio", "/v1/recordings/" + recB.ID + "/audio", 404},
			{alice, "alice, the access log", "/v1/calls/" + callA.ID + "/access", 403},
			{mia, "mia, bob's call", "/v1/calls/" + callB.ID, 200},
			{mia, "mia, globex's call", "/v1/calls/" + callC.ID, 404},
			{mia, "mia, globex's audio", "/v1/recordings/" + recC.ID + "/audio", 404},
			{gina, "gina, acme's call", "/v1/calls/" + callA.ID, 404},
			{gina, "gina, acme's recording", "/v1/recordings/" + recA.ID, 404},
			{gw.apiAs(t, ""), "no token", "/v1/calls", 401},
		} {
			if got := tc.who.status(tc.path); got != tc.want {
				t.Errorf("%s: GET %s = %d, want %d", tc.name, tc.path, got, tc.want)
			}
		}
		// Another tenant's call answers exactly as a call that never existed.
		_, cross := mia.do(http.MethodGet, "/v1/calls/"+callC.ID, "", nil)
		unknown := callC.ID[:len(callC.ID)-4] + "0000"
		if unknown == callC.ID {
			unknown = callC.ID[:len(callC.ID)-4] + "1111"
		}
		_, none := mia.do(http.MethodGet, "/v1/calls/"+unknown, "", nil)
		if !bytes.Equal(cross, none) {
			t.Errorf("cross-tenant 404 body %q differs from an unknown id's %q", cross, none)
		}
	})

	t.Run("range playback and access log", func(t *testing.T) {
		obj := storedObject(t, gw, recA.SHA256)
		var got []byte
		ranges := [][2]int{{0, 43}, {44, 8043}, {8044, len(obj) - 1}}
		for _, r := range ranges {
			resp, body := alice.do(http.MethodGet, "/v1/recordings/"+recA.ID+"/audio", "", map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", r[0], r[1])})
			if resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("Range bytes=%d-%d: %d %s", r[0], r[1], resp.StatusCode, body)
			}
			if cr, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", r[0], r[1], len(obj)); cr != want {
				t.Errorf("Content-Range %q, want %q", cr, want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "audio/wav" {
				t.Errorf("Content-Type %q", ct)
			}
			if !bytes.Equal(body, obj[r[0]:r[1]+1]) {
				t.Errorf("bytes=%d-%d: %d bytes that differ from the stored object's", r[0], r[1], len(body))
			}
			got = append(got, body...)
		}
		if !bytes.Equal(got, obj) {
			t.Errorf("the ranges put together (%d bytes) are not the stored object (%d bytes)", len(got), len(obj))
		}
		log := mia.access(callA.ID)
		if len(log) != 1 {
			t.Fatalf("%d access-log entries for one ranged listening session, want 1: %+v", len(log), log)
		}
		if e := log[0]; e.Username != fxRep || e.Path != "proxy" || e.RecordingID != recA.ID || e.Requests != int64(len(ranges)) || e.Bytes != int64(len(obj)) {
			t.Errorf("access entry %+v: want alice, proxy, %s, %d requests, %d bytes", e, recA.ID, len(ranges), len(obj))
		}
	})

	t.Run("signed link", func(t *testing.T) {
		resp, body := mia.do(http.MethodPost, "/v1/recordings/"+recB.ID+"/links", "{}", nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST links: %d %s", resp.StatusCode, body)
		}
		var link struct{ URL string }
		if err := json.Unmarshal(body, &link); err != nil || link.URL == "" {
			t.Fatalf("POST links: %v %s", err, body)
		}
		anyone := gw.apiAs(t, "")
		resp, audio := anyone.do(http.MethodGet, link.URL, "", nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "audio/wav" {
			t.Fatalf("GET the link without a token: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.Equal(audio, storedObject(t, gw, recB.SHA256)) {
			t.Error("the link played bytes other than the stored object's")
		}
		for name, alter := range map[string]func(url.Values){
			"signature": func(v url.Values) { s := v.Get("s"); v.Set("s", flip(s, len(s)-2)) },
			"expiry":    func(v url.Values) { v.Set("e", flip(v.Get("e"), 0)) },
			"user":      func(v url.Values) { v.Set("u", flip(v.Get("u"), 0)) },
		} {
			u, err := url.Parse(link.URL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			alter(q)
			u.RawQuery = q.Encode()
			if resp, body := anyone.do(http.MethodGet, u.String(), "", nil); resp.StatusCode != http.StatusForbidden {
				t.Errorf("link with an altered %s: %d %s, want 403", name, resp.StatusCode, body)
			}
		}
		if log := mia.access(callB.ID); len(log) != 1 || log[0].Path != "link" || log[0].Username != "mia" {
			t.Errorf("access log of bob's call after one link playback: %+v, want one link entry by mia", log)
		}
	})
	m := gw.Metrics(t)
	for path, want := range map[string]float64{"proxy": 1, "link": 1} {
		if v, _ := m.Get("blackbox_playbacks_total", "path", path); v != want {
			t.Errorf("blackbox_playbacks_total{path=%q} = %v, want %v", path, v, want)
		}
	}
}

// flip changes the byte at i of s to another of the same class.
func flip(s string, i int) string {
	b := []byte(s)
	switch c := b[i]; {
	case c >= '0' && c <= '8', c >= 'a' && c <= 'y', c >= 'A' && c <= 'Y':
		b[i] = c + 1
	default:
		b[i] = '1'
	}
	return string(b)
}
