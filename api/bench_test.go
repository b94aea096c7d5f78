package api

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// BenchmarkGetCall is one authenticated metadata read: token lookup by
// hash, role check, scoped query, JSON.
func BenchmarkGetCall(b *testing.B) {
	f := newFixture(b)
	c := f.record("ann", f.clock.Now(), 10)
	path := "/v1/calls/" + c.call.ID
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if w := f.do("mia", "GET", path, nil); w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/request")
}

// BenchmarkPlayback streams a whole 60 s recording (1.9 MB) through the
// API from a file: object store, access log write included.
func BenchmarkPlayback(b *testing.B) {
	f := newFixture(b)
	c := f.record("ann", f.clock.Now(), 60*8000)
	path := "/v1/recordings/" + c.rec.ID + "/audio"
	b.SetBytes(int64(len(c.audio)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Authorization", "Bearer "+f.tokens["ann"])
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, r)
		if w.Code != 200 || w.Body.Len() != len(c.audio) {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkRangeRequest is one 64 KiB Range request of an ongoing
// listening session: what a browser's audio element sends while playing.
func BenchmarkRangeRequest(b *testing.B) {
	f := newFixture(b)
	c := f.record("ann", f.clock.Now(), 60*8000)
	path := "/v1/recordings/" + c.rec.ID + "/audio"
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if w := f.do("ann", "GET", path, nil, "Range", "bytes=65536-131071"); w.Code != 206 {
			b.Fatal(w.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/request")
}

// BenchmarkLogAccess is the access-log write each playback request makes
// (folding into the open session).
func BenchmarkLogAccess(b *testing.B) {
	f := newFixture(b)
	a := store.Access{RecordingID: "r", CallID: "c", UserID: "u", Username: "ann", Path: store.AccessProxy, RemoteAddr: "192.0.2.1"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.acme.LogAccess(ctx, a, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
