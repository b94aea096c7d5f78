package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
	"github.com/blackbox-gw/blackbox/store/secrets"
	"github.com/blackbox-gw/blackbox/store/storetest"
)

// fixture is a real SQLite store and file: object store in temp dirs, two
// tenants (acme with reps ann and ben, manager mia, owner otto; globex with
// rep bea and owner bo), a token per user and the API over them.
type fixture struct {
	t      testing.TB
	db     *store.DB
	objs   objects.Store
	objDir string
	clock  *storetest.Clock
	reg    *prometheus.Registry
	srv    *Server
	key    []byte

	acme, globex  *store.Scope // operator scopes
	users         map[string]store.User
	tokens        map[string]string // username → secret
	retentionDays map[string]int
	retentionMu   sync.Mutex
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	key, _ := secrets.Generate()
	kr, err := secrets.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, clock: storetest.NewClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)), users: map[string]store.User{},
		tokens: map[string]string{}, retentionDays: map[string]int{}, reg: prometheus.NewRegistry()}
	f.db, err = store.Open(ctx, "sqlite:"+filepath.Join(dir, "bb.db"), store.Options{Keyring: kr, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	f.objDir = filepath.Join(dir, "objects")
	if f.objs, err = objects.Open(ctx, "file:"+f.objDir, objects.Options{}); err != nil {
		t.Fatal(err)
	}
	if f.key, err = kr.Derive("playback-links"); err != nil {
		t.Fatal(err)
	}
	for tenant, users := range map[string]map[string]store.Role{
		"acme":   {"ann": store.RoleRep, "ben": store.RoleRep, "mia": store.RoleManager, "otto": store.RoleOwner},
		"globex": {"bea": store.RoleRep, "bo": store.RoleOwner},
	} {
		if _, err := f.db.CreateTenant(ctx, tenant, "US"); err != nil {
			t.Fatal(err)
		}
		p, _ := f.db.AdminScope(ctx, tenant)
		sc := f.db.In(p)
		if tenant == "acme" {
			f.acme = sc
		} else {
			f.globex = sc
		}
		for name, role := range users {
			u, err := sc.CreateUser(ctx, store.NewUser{Username: name, Role: role, Realm: "blackbox", Password: "correct horse battery"})
			if err != nil {
				t.Fatal(err)
			}
			f.users[name] = u
			_, secret, err := sc.CreateToken(ctx, store.NewToken{Username: name, TTL: 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			f.tokens[name] = secret
		}
	}
	f.srv, err = New(Options{DB: f.db, Objects: f.objs, LinkKey: f.key, Registerer: f.reg, Now: f.clock.Now,
		RetentionDays: f.retention, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) retention(tenant string) int {
	f.retentionMu.Lock()
	defer f.retentionMu.Unlock()
	return f.retentionDays[tenant]
}

func (f *fixture) scopeOf(username string) *store.Scope {
	if f.users[username].TenantID == f.users["bea"].TenantID {
		return f.globex
	}
	return f.acme
}

// wav returns a stereo 8 kHz 16-bit WAV file of frames sample pairs whose
// samples differ, so any misplaced byte shows.
func wav(frames int) []byte {
	data := make([]byte, frames*4)
	for i := range frames * 2 {
		binary.LittleEndian.PutUint16(data[i*2:], uint16(i*7919))
	}
	var h [44]byte
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 2)
	binary.LittleEndian.PutUint32(h[24:], 8000)
	binary.LittleEndian.PutUint32(h[28:], 32000)
	binary.LittleEndian.PutUint16(h[32:], 4)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	return append(h[:], data...)
}

// recorded is a call of a user with one stored recording.
type recorded struct {
	call  store.Call
	rec   store.Recording
	audio []byte
}

// record writes a call of username, its audio object and its recording
// row, stored, as the recorder would; the call started at start.
func (f *fixture) record(username string, start time.Time, frames int) recorded {
	f.t.Helper()
	ctx := context.Background()
	sc := f.scopeOf(username)
	call := store.Call{ID: store.NewCallID(), UserID: f.users[username].ID, Direction: store.Outbound, Caller: "+14155550100",
		Callee: "+14155550199", ACallID: "a-" + store.NewCallID(), InviteAt: start, AnswerAt: start, EndAt: start.Add(time.Minute),
		EndReason: "bye", ACode: 200, BCode: 200, HangupBy: "caller"}
	if err := sc.InsertCall(ctx, call); err != nil {
		f.t.Fatal(err)
	}
	audio := wav(frames)
	key := "tenants/" + f.users[username].TenantID + "/" + call.ID + ".wav"
	if err := f.objs.Put(ctx, key, bytes.NewReader(audio), int64(len(audio)), objects.PutOptions{ContentType: "audio/wav"}); err != nil {
		f.t.Fatal(err)
	}
	rec, _, err := sc.CreateRecording(ctx, store.Recording{CallID: call.ID, ObjectKey: key, Channels: []string{"rep", "remote"},
		Codec: "pcm_s16le", SampleRate: 8000, Node: "n1", StartedAt: start})
	if err != nil {
		f.t.Fatal(err)
	}
	dur := time.Duration(frames) * time.Second / 8000
	if err := sc.MarkUploading(ctx, rec.ID, store.RecordingEnd{EndedAt: start.Add(dur), Duration: dur}); err != nil {
		f.t.Fatal(err)
	}
	sum, pcm := sha256.Sum256(audio), sha256.Sum256(audio[44:])
	if err := sc.MarkStored(ctx, rec.ID, store.RecordingStoredInfo{SHA256: hex.EncodeToString(sum[:]), AudioSHA256: hex.EncodeToString(pcm[:]),
		SizeBytes: int64(len(audio)), Duration: dur}); err != nil {
		f.t.Fatal(err)
	}
	if rec, err = sc.Recording(ctx, rec.ID); err != nil {
		f.t.Fatal(err)
	}
	return recorded{call: call, rec: rec, audio: audio}
}

// rawBody is sent as it is, not marshalled.
type rawBody string

// do runs one request as username ("" = no token) through the handler.
func (f *fixture) do(username, method, target string, body any, hdr ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	var rd io.Reader
	if raw, ok := body.(rawBody); ok {
		rd = strings.NewReader(string(raw))
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	r := httptest.NewRequest(method, target, rd)
	if username != "" {
		r.Header.Set("Authorization", "Bearer "+f.tokens[username])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

// decodeInto unmarshals a JSON answer or fails the test.
func decodeInto[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", w.Code, err, w.Body.String())
	}
	return v
}

// errorCode returns the code of a JSON error answer.
func errorCode(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	e := decodeInto[struct {
		Error Error `json:"error"`
	}](t, w)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error answer without code or message: %s", w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error answer of type %q", ct)
	}
	return e.Error.Code
}

func (f *fixture) accessLog(sc *store.Scope, filter store.AccessFilter) []store.AccessEntry {
	f.t.Helper()
	l, err := sc.AccessLog(context.Background(), filter)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// suspend trips the attempts anomaly rule for username and returns the id
// of the suspension in force (lifting an earlier one first).
func (f *fixture) suspend(username string) string {
	f.t.Helper()
	ctx := context.Background()
	sc := f.scopeOf(username)
	if _, err := sc.LiftSuspensions(ctx, username); err != nil {
		f.t.Fatal(err)
	}
	// Attempts count from the lift on, so they come a moment after it.
	f.clock.Advance(time.Second)
	u := f.users[username]
	now := f.clock.Now()
	for range 2 {
		v, err := f.db.PolicyAdmit(ctx, store.PolicyAdmission{TenantID: u.TenantID, UserID: u.ID, Username: username,
			CallID: store.NewCallID(), Node: "n1", At: now, Number: "+14155550100", Country: "US", Prefix: "1415",
			Lease: time.Minute, Deadline: now.Add(time.Hour), Spend: store.PolicySpend{Day: now, Month: now},
			Anomaly: store.PolicyAnomaly{User: store.AnomalyRule{MaxAttempts: 1, AttemptsWindow: time.Minute}}})
		if err != nil {
			f.t.Fatal(err)
		}
		if v.Suspension != nil {
			return v.Suspension.ID
		}
	}
	f.t.Fatalf("no suspension of %s", username)
	return ""
}
