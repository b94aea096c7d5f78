package objectstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Versity is a versitygw S3 server run by a test on a free loopback port,
// storing into a temp directory. It can be stopped and started again on the
// same port and data, to test outages.
type Versity struct {
	t      *testing.T
	bin    string
	dir    string
	addr   string
	log    *bytes.Buffer
	cmd    *exec.Cmd
	done   chan struct{}
	Access string
	Secret string
}

// EnvRequire, set to 1 (CI does), turns a missing versitygw from a skip
// into a failure.
const EnvRequire = "BLACKBOX_REQUIRE_VERSITYGW"

// versityBin finds the versitygw binary: PATH, then $(go env GOPATH)/bin.
func versityBin() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
		p := filepath.Join(dir, "bin", "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// StartVersity starts versitygw, creates bucket and sets the AWS credential
// environment the s3 backend reads. It skips the test, loudly, only when the
// binary is absent. The server stops at cleanup.
func StartVersity(t *testing.T, bucket string) *Versity {
	t.Helper()
	bin := versityBin()
	if bin == "" {
		msg := "versitygw binary not found on PATH or in $(go env GOPATH)/bin; " +
			"install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 but %s", EnvRequire, msg)
		}
		t.Skip("SKIPPED LOUDLY: " + msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	v := &Versity{t: t, bin: bin, dir: t.TempDir(), addr: addr, Access: "blackboxtest", Secret: "blackboxtestsecret"}
	t.Setenv("AWS_ACCESS_KEY_ID", v.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", v.Secret)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	v.Start()
	t.Cleanup(v.Stop)
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(v.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(v.Access, v.Secret, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("versitygw: create bucket %s: %v\n%s", bucket, err, v.log)
	}
	return v
}

// Dir is where the server keeps buckets (one directory each) and objects.
func (v *Versity) Dir() string { return v.dir }

// Endpoint is the server's base URL.
func (v *Versity) Endpoint() string { return "http://" + v.addr }

// URL is the objects.Open URL of bucket on this server.
func (v *Versity) URL(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&region=us-east-1&path_style=true", bucket, v.Endpoint())
}

// Start runs the server (again) and waits until it accepts connections.
func (v *Versity) Start() {
	v.t.Helper()
	if v.cmd != nil {
		v.t.Fatal("versitygw already running")
	}
	v.log = &bytes.Buffer{}
	cmd := exec.Command(v.bin, "--access", v.Access, "--secret", v.Secret, "--port", v.addr, "posix", v.dir)
	cmd.Stdout, cmd.Stderr = v.log, v.log
	if err := cmd.Start(); err != nil {
		v.t.Fatalf("start versitygw: %v", err)
	}
	v.cmd, v.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(v.done)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", v.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-v.done:
			v.cmd = nil
			v.t.Fatalf("versitygw exited at start:\n%s", v.log)
		default:
		}
		if time.Now().After(deadline) {
			v.Stop()
			v.t.Fatalf("versitygw did not listen on %s within 15s:\n%s", v.addr, v.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after 5s) and waits for it.
func (v *Versity) Stop() {
	if v.cmd == nil {
		return
	}
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.done:
	case <-time.After(5 * time.Second):
		_ = v.cmd.Process.Kill()
		<-v.done
	}
	v.cmd = nil
}
