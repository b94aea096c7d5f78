package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/blackbox-gw/blackbox/recorder"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// get fetches url over a real connection as username with extra headers.
func get(t *testing.T, method, url, token string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		t.Fatalf("playback redirected")
		return nil
	}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestRangePlayback(t *testing.T) {
	f := newFixture(t)
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	ann := f.record("ann", f.clock.Now(), 80000) // 10 s, 320 kB
	audio, size := ann.audio, len(ann.audio)
	url := ts.URL + "/v1/recordings/" + ann.rec.ID + "/audio"
	tok := f.tokens["ann"]

	resp, body := get(t, "GET", url, tok)
	sum := sha256.Sum256(audio)
	if resp.StatusCode != 200 || !bytes.Equal(body, audio) || resp.Header.Get("Content-Type") != "audio/wav" ||
		resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("ETag") != `"`+ann.rec.SHA256+`"` ||
		resp.Header.Get("Repr-Digest") != "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":" ||
		resp.Header.Get("Content-Length") != strconv.Itoa(size) || resp.Header.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("full GET: %d %v, %d bytes", resp.StatusCode, resp.Header, len(body))
	}
	w, err := recorder.ReadWAV(bytes.NewReader(body))
	if err != nil || w.Channels != 2 || w.SampleRate != 8000 || w.Frames() != 80000 {
		t.Fatalf("served WAV: %+v %v", w, err)
	}

	var sent int
	sent += len(body)
	for _, c := range []struct {
		rng      string
		from, to int // inclusive
	}{
		{"bytes=0-99", 0, 99},
		{"bytes=44-", 44, size - 1},
		{"bytes=-10", size - 10, size - 1},
		{"bytes=100000-100003", 100000, 100003},
		{fmt.Sprintf("bytes=%d-%d", size-5, size+1000), size - 5, size - 1},
	} {
		resp, body := get(t, "GET", url, tok, "Range", c.rng)
		want := fmt.Sprintf("bytes %d-%d/%d", c.from, c.to, size)
		if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != want || !bytes.Equal(body, audio[c.from:c.to+1]) {
			t.Errorf("%s: %d %q, %d bytes; want 206 %q", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(body), want)
		}
		sent += len(body)
	}

	// Several ranges at once: a multipart answer, each part exact.
	resp, body = get(t, "GET", url, tok, "Range", "bytes=0-3,1000-1999")
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != 206 || err != nil {
		t.Fatalf("multi-range: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sent += len(body)
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, span := range [][2]int{{0, 4}, {1000, 2000}} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(p)
		if !bytes.Equal(got, audio[span[0]:span[1]]) || p.Header.Get("Content-Type") != "audio/wav" {
			t.Fatalf("part %v: %d bytes, type %q", span, len(got), p.Header.Get("Content-Type"))
		}
	}

	// Unsatisfiable, and If-Range.
	resp, body = get(t, "GET", url, tok, "Range", fmt.Sprintf("bytes=%d-", size))
	if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) ||
		resp.Header.Get("Content-Type") != "application/json" || !bytes.Contains(body, []byte(`"range_not_satisfiable"`)) {
		t.Fatalf("past the end: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Range"), body)
	}
	resp, body = get(t, "GET", url, tok, "Range", "bytes=0-9", "If-Range", `"`+ann.rec.SHA256+`"`)
	if resp.StatusCode != 206 || len(body) != 10 {
		t.Fatalf("If-Range with our ETag: %d", resp.StatusCode)
	}
	sent += len(body)
	resp, body = get(t, "GET", url, tok, "Range", "bytes=0-9", "If-Range", `"stale"`)
	if resp.StatusCode != 200 || len(body) != size {
		t.Fatalf("If-Range with another ETag: %d", resp.StatusCode)
	}
	sent += len(body)
	if resp, body := get(t, "HEAD", url, tok); resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(size) {
		t.Fatalf("HEAD: %d %d", resp.StatusCode, resp.ContentLength)
	}

	// All of that was one listening session.
	entries := f.accessLog(f.acme, store.AccessFilter{RecordingID: ann.rec.ID})
	if len(entries) != 1 || entries[0].Path != store.AccessProxy || entries[0].Requests != 10 || entries[0].Bytes != int64(sent) ||
		entries[0].RemoteAddr != "127.0.0.1" {
		t.Fatalf("access log: %+v (sent %d)", entries, sent)
	}
}

// failingStore is an object store whose reads or deletes fail on demand.
type failingStore struct {
	objects.Store
	failStat, failDelete bool
}

func (s *failingStore) Stat(ctx context.Context, key string) (objects.Info, error) {
	if s.failStat {
		return objects.Info{}, errors.New("connection refused")
	}
	return s.Store.Stat(ctx, key)
}

func (s *failingStore) Delete(ctx context.Context, key string) error {
	if s.failDelete {
		return errors.New("connection refused")
	}
	return s.Store.Delete(ctx, key)
}

func TestPlaybackRefusals(t *testing.T) {
	f := newFixture(t)
	ann := f.record("ann", f.clock.Now(), 100)

	// Not stored yet.
	up, _, err := f.acme.CreateRecording(t.Context(), store.Recording{CallID: ann.call.ID, ObjectKey: "pending/x.wav", Codec: "pcm_s16le",
		SampleRate: 8000, StartedAt: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/recordings/" + up.ID + "/audio", "/v1/recordings/" + up.ID + "/links"} {
		method := "GET"
		if filepath.Base(path) == "links" {
			method = "POST"
		}
		if w := f.do("ann", method, path, nil); w.Code != 409 || errorCode(t, w) != "not_stored" {
			t.Errorf("%s of an unstored recording: %d %s", path, w.Code, w.Body.String())
		}
	}

	// Storage down: 503, and nothing logged as heard.
	fs := &failingStore{Store: f.objs, failStat: true}
	f.srv.opts.Objects = fs
	if w := f.do("ann", "GET", "/v1/recordings/"+ann.rec.ID+"/audio", nil); w.Code != 503 || errorCode(t, w) != "storage_unavailable" {
		t.Fatalf("storage down: %d %s", w.Code, w.Body.String())
	}
	if n := len(f.accessLog(f.acme, store.AccessFilter{})); n != 0 {
		t.Fatalf("%d access entries for audio never sent", n)
	}
	fs.failStat = false

	// The object vanished from storage.
	if err := os.Remove(filepath.Join(f.objDir, filepath.FromSlash(ann.rec.ObjectKey))); err != nil {
		t.Fatal(err)
	}
	if w := f.do("ann", "GET", "/v1/recordings/"+ann.rec.ID+"/audio", nil); w.Code != 404 || errorCode(t, w) != "audio_missing" {
		t.Fatalf("missing object: %d %s", w.Code, w.Body.String())
	}
}
