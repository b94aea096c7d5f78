package e2e

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/store/objects/objectstest"
)

// The recorder against a real S3-compatible server (issue 3): versitygw,
// started by the test, is the gateway's object store. These tests cannot
// run in parallel: StartVersity sets the AWS credential environment.

const s3Bucket = "recordings"

// s3Fixture is a call fixture whose objects.url is a versitygw bucket, and
// a client of its own to read the bucket back.
type s3Fixture struct {
	*callFixture
	versity *objectstest.Versity
	client  *s3.Client
}

func newS3Fixture(t *testing.T) *s3Fixture {
	t.Helper()
	requireTool(t, "sipp")
	requireVersity(t)
	v := objectstest.StartVersity(t, s3Bucket)
	fx := newCallFixture(t, GatewayOptions{
		Configure: func(c *config.Config) { c.Objects.URL = v.URL(s3Bucket) },
		// StartVersity exported these into this process; say so anyway.
		Env: []string{"AWS_ACCESS_KEY_ID=" + v.Access, "AWS_SECRET_ACCESS_KEY=" + v.Secret, "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"},
	})
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(v.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(v.Access, v.Secret, ""),
	})
	return &s3Fixture{callFixture: fx, versity: v, client: client}
}

// requireVersity fails, under BLACKBOX_E2E_REQUIRE_TOOLS, where
// StartVersity would skip: versitygw on neither PATH nor $(go env GOPATH)/bin.
func requireVersity(t *testing.T) {
	t.Helper()
	if os.Getenv(requireToolsEnv) == "" {
		return // StartVersity skips loudly by itself
	}
	if _, err := exec.LookPath("versitygw"); err == nil {
		return
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(gopath))) {
			if fileExists(filepath.Join(dir, "bin", "versitygw")) {
				return
			}
		}
	}
	t.Fatal("!!! versitygw is not installed: this end-to-end test did NOT run. Install it: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
}

// keys lists every object in the bucket.
func (s *s3Fixture) keys(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s3Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list bucket %s: %v", s3Bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// oneObject waits up to timeout for the bucket's first object, checks that
// no second one follows, and downloads it into the test's directory.
func (s *s3Fixture) oneObject(t *testing.T, timeout time.Duration) (key, path string) {
	t.Helper()
	if !eventually(timeout, func() bool { return len(s.keys(t)) > 0 }) {
		t.Fatalf("no object in bucket %s within %v", s3Bucket, timeout)
	}
	time.Sleep(time.Second) // a second object would show up by now
	keys := s.keys(t)
	if len(keys) != 1 {
		t.Fatalf("%d objects in bucket %s, want exactly 1: %v", len(keys), s3Bucket, keys)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(keys[0])})
	if err != nil {
		t.Fatalf("get %s: %v", keys[0], err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("get %s: %v", keys[0], err)
	}
	path = filepath.Join(workDir(t), "object.wav")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return keys[0], path
}

// recordingRow is one line of `blackbox recordings list --json`.
type recordingRow struct {
	ID        string `json:"id"`
	CallID    string `json:"call_id"`
	State     string `json:"state"`
	Truncated bool   `json:"truncated"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
}

func recordingRows(t *testing.T, gw *Gateway, tenant string) []recordingRow {
	t.Helper()
	out := gw.CLI(t, "", "recordings", "list", "--tenant", tenant, "--json")
	var rows []recordingRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("recordings list --json: %v\n%s", err, out)
	}
	return rows
}

// TestGatewayRecordingS3: the recording end-to-end test with the recording
// stored in S3: tones on the right channels, duration, SHA-256, verify.
func TestGatewayRecordingS3(t *testing.T) {
	s := newS3Fixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startToneCall(t, ctx, s.callFixture, 5*time.Second)
	c.finish(t)
	_, path := s.oneObject(t, 15*time.Second)
	assertToneRecording(t, s.callFixture, c, path)
}

// TestGatewayRecordingS3Outage: S3 stops during a call and comes back
// after the upload failed; the recording arrives exactly once (one object,
// one row, never dead-lettered) and `blackbox verify --all` passes.
func TestGatewayRecordingS3Outage(t *testing.T) {
	s := newS3Fixture(t)
	gw := s.gw
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := startToneCall(t, ctx, s.callFixture, 4*time.Second)
	time.Sleep(1500 * time.Millisecond)
	s.versity.Stop()
	c.finish(t)
	uploadErrors := func() float64 {
		v, _ := gw.Metrics(t).Get("blackbox_recording_uploads_total", "result", "error")
		return v
	}
	if !eventually(20*time.Second, func() bool { return uploadErrors() >= 1 }) {
		t.Fatal("no failed upload while S3 was down: the outage was never felt")
	}
	if rows := recordingRows(t, gw, fxTenant); len(rows) != 1 || rows[0].State == "stored" {
		t.Fatalf("while S3 is down: %+v, want one recording not yet stored", rows)
	}
	t.Logf("S3 down: %v failed upload attempts so far; starting it again", uploadErrors())
	s.versity.Start()

	_, path := s.oneObject(t, 30*time.Second)
	sum := fileSHA256(t, path)
	if !eventually(5*time.Second, func() bool {
		rows := recordingRows(t, gw, fxTenant)
		return len(rows) == 1 && rows[0].State == "stored"
	}) {
		t.Fatalf("recordings after S3 came back: %+v, want exactly one, stored", recordingRows(t, gw, fxTenant))
	}
	rows := recordingRows(t, gw, fxTenant)
	if rows[0].SHA256 != sum || rows[0].Truncated || rows[0].Attempts < 2 {
		t.Errorf("recording row %+v: want the object's SHA-256 %s, not truncated, stored after at least one failed attempt", rows[0], sum)
	}
	m := gw.Metrics(t)
	if v := m.Sum("blackbox_recordings_dead_lettered_total"); v != 0 {
		t.Errorf("blackbox_recordings_dead_lettered_total = %v after a short outage", v)
	}
	if v, _ := m.Get("blackbox_recording_uploads_total", "result", "ok"); v != 1 {
		t.Errorf("blackbox_recording_uploads_total{result=ok} = %v, want 1", v)
	}
	if keys := s.keys(t); len(keys) != 1 {
		t.Errorf("objects in the bucket at the end: %v, want exactly 1", keys)
	}
	gw.CLI(t, "", "verify", "--tenant", fxTenant, "--all")
	w, err := readWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := c.endAt.Sub(c.answerAt); w.Duration() < want-200*time.Millisecond {
		t.Errorf("recording lasts %v, the call %v: audio lost in the outage", w.Duration(), want)
	}
}
