package api

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store/objects"
	"github.com/blackbox-gw/blackbox/store/objects/objectstest"
)

// Playback and retention against a real S3-compatible server (versitygw):
// ranges come from ranged GETs, deletion removes the object there.
func TestPlaybackAndRetentionOverS3(t *testing.T) {
	v := objectstest.StartVersity(t, "recordings")
	f := newFixture(t)
	s3, err := objects.Open(context.Background(), v.URL("recordings"), objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.objs, f.srv.opts.Objects = s3, s3
	ts := httptest.NewServer(f.srv)
	defer ts.Close()

	ann := f.record("ann", f.clock.Now().Add(-40*day), 16000)
	url := ts.URL + "/v1/recordings/" + ann.rec.ID + "/audio"
	for _, c := range [][2]int{{0, 43}, {44, 10043}, {len(ann.audio) - 100, len(ann.audio) - 1}} {
		resp, body := get(t, "GET", url, f.tokens["ann"], "Range", fmt.Sprintf("bytes=%d-%d", c[0], c[1]))
		if resp.StatusCode != 206 || string(body) != string(ann.audio[c[0]:c[1]+1]) {
			t.Fatalf("range %v: %d, %d bytes", c, resp.StatusCode, len(body))
		}
	}
	if resp, body := get(t, "GET", url, f.tokens["mia"]); resp.StatusCode != 200 || string(body) != string(ann.audio) {
		t.Fatalf("full: %d, %d bytes", resp.StatusCode, len(body))
	}

	f.setRetention("acme", 30)
	res, err := f.retentionSweeper(s3, nil).Sweep(context.Background())
	if err != nil || res.Deleted != 1 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	if f.objectExists(ann.rec.ObjectKey) {
		t.Fatal("object survived in S3")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s3.Stat(ctx, ann.rec.ObjectKey); err == nil {
		t.Fatal("S3 still has the object")
	}
}
