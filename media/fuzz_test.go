package media

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pion/sdp/v3"
)

// FuzzOffer feeds arbitrary bodies to every SDP entry point of one session.
// Nothing may panic; errors must be the sentinels SIP maps to responses;
// whatever is produced must be SDP that parses and points at Blackbox.
func FuzzOffer(f *testing.F) {
	seeds, err := filepath.Glob("testdata/sdp/*.sdp")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed corpus in testdata/sdp: %v", err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	e := newTestEngine(f, 2, nil)
	s := newTestSession(f, e, SessionOptions{})

	check := func(t *testing.T, what string, out []byte, err error, port int) {
		if err != nil {
			if !errors.Is(err, ErrBadSDP) && !errors.Is(err, ErrNoCodec) {
				t.Fatalf("%s: unexpected error kind: %v", what, err)
			}
			return
		}
		if out == nil {
			return
		}
		var d sdp.SessionDescription
		if err := d.Unmarshal(out); err != nil {
			t.Fatalf("%s produced SDP that does not parse: %v\n%s", what, err, out)
		}
		found := false
		for _, m := range d.MediaDescriptions {
			if m.MediaName.Port.Value == port && m.MediaName.Media == "audio" {
				found = true
			} else if m.MediaName.Port.Value != 0 {
				t.Fatalf("%s: m= line on port %d is not Blackbox's %d:\n%s", what, m.MediaName.Port.Value, port, out)
			}
		}
		if !found {
			t.Fatalf("%s: no audio m= line on Blackbox's port %d:\n%s", what, port, out)
		}
		if c := d.ConnectionInformation; c == nil || (c.Address.Address != "127.0.0.1" && c.Address.Address != "0.0.0.0") {
			t.Fatalf("%s: c= is not Blackbox's address:\n%s", what, out)
		}
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := s.Offer(LegA, body)
		check(t, "Offer(A)", out, err, s.LocalPort(LegB))
		out, err = s.Answer(LegB, body)
		check(t, "Answer(B)", out, err, s.LocalPort(LegA))
		out, err = s.Offer(LegB, body)
		check(t, "Offer(B)", out, err, s.LocalPort(LegA))
		if _, err := s.LocalOffer(LegB); err != nil {
			t.Fatalf("LocalOffer: %v", err)
		}
		out, err = s.Answer(LegB, body)
		check(t, "Answer(B) to local offer", out, err, 0)
	})
}

// TestFuzzCorpusFiles keeps the checked-in corpus honest: each file parses
// as a fuzz input (a broken file would silently drop a seed).
func TestFuzzCorpusFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/fuzz/FuzzOffer/*")
	if len(files) == 0 {
		t.Fatal("no corpus in testdata/fuzz/FuzzOffer")
	}
	for _, p := range files {
		b, _ := os.ReadFile(p)
		if len(b) < 14 || string(b[:14]) != "go test fuzz v" {
			t.Errorf("%s is not a fuzz corpus file", p)
		}
	}
}
