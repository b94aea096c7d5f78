package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/blackbox-gw/blackbox/config"
)

// GatewayOptions tunes one `blackbox serve` under test.
type GatewayOptions struct {
	// Binary replaces the built blackbox (the harness self-check uses a stand-in).
	Binary string
	// Env adds KEY=VALUE pairs to the process environment.
	Env []string
	// Configure has the last word on the generated configuration.
	Configure func(*config.Config)
	// RTPPorts is the size of the media port block (default 200: 50 calls).
	RTPPorts int
	// ReadyTimeout bounds the wait for /readyz (default 30 s).
	ReadyTimeout time.Duration
	// Prompt is the consent announcement; default testdata/audio/prompt-beep.wav
	// (0.8 s of 2 kHz, version "test-beep"), so a call test does not wait
	// through the 6.8 s configs/prompts/consent-en-v1.wav.
	Prompt string
}

// Gateway is one blackbox process (or a sequence of them on the same
// directory, for crash tests) listening on ports of its own.
type Gateway struct {
	Dir        string
	ConfigPath string
	Config     *config.Config // as written and validated
	SIPPort    int            // UDP and TCP
	SIPAddr    string         // 127.0.0.1:SIPPort
	HTTPAddr   string
	RTPMin     int
	RTPMax     int
	FernetKey  string

	bin          string
	env          []string
	readyTimeout time.Duration
	logPath      string
	log          *syncBuffer // every run's output

	mu   sync.Mutex
	proc *gatewayProc
	runs int
}

type gatewayProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // from Wait, valid after done
}

// startGateway is newGateway and Start: a running gateway.
func startGateway(t *testing.T, opts GatewayOptions) *Gateway {
	t.Helper()
	g := newGateway(t, opts)
	g.Start(t)
	return g
}

// newGateway writes a config into a fresh directory and returns the gateway
// unstarted, so a test can provision with the CLI before `serve` runs. The
// process is stopped at test end; its log is printed if the test failed.
func newGateway(t *testing.T, opts GatewayOptions) *Gateway {
	t.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = requireBinary(t)
	}
	dir := workDir(t)
	g := &Gateway{
		Dir:          dir,
		ConfigPath:   filepath.Join(dir, "blackbox.yaml"),
		SIPPort:      freePort(t),
		bin:          bin,
		readyTimeout: opts.ReadyTimeout,
		logPath:      filepath.Join(dir, "blackbox.log"),
		log:          &syncBuffer{},
	}
	if g.readyTimeout == 0 {
		g.readyTimeout = 30 * time.Second
	}
	g.SIPAddr = fmt.Sprintf("127.0.0.1:%d", g.SIPPort)
	g.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	size := opts.RTPPorts
	if size == 0 {
		size = 200
	}
	g.RTPMin, g.RTPMax = rtpPortRange(t, size)
	g.FernetKey = newFernetKey(t)

	cfg := config.Default()
	cfg.SIP.Listen = []string{"udp://" + g.SIPAddr, "tcp://" + g.SIPAddr}
	cfg.SIP.ExternalHost = "127.0.0.1"
	cfg.SIP.TrunkTimeout = 3 * time.Second
	cfg.SIP.RingTimeout = 20 * time.Second
	cfg.HTTP.Listen = g.HTTPAddr
	cfg.Media.RTPPorts = fmt.Sprintf("%d-%d", g.RTPMin, g.RTPMax)
	cfg.Media.Bind = "127.0.0.1"
	cfg.Media.RTPTimeout = 10 * time.Second
	cfg.Store.DSN = "sqlite:" + filepath.Join(dir, "blackbox.db")
	cfg.Objects.URL = "file:" + filepath.Join(dir, "recordings")
	cfg.Secrets.KeyFile = filepath.Join(dir, "fernet.key")
	cfg.Recorder.SpoolDir = filepath.Join(dir, "spool")
	prompt := config.Prompt{File: repoPath("testdata", "audio", "prompt-beep.wav"), Version: "test-beep"}
	if opts.Prompt != "" {
		prompt = config.Prompt{File: opts.Prompt, Version: "test"}
	}
	cfg.Consent.Prompts = map[string]config.Prompt{"consent-en": prompt}
	cfg.Consent.Prompt = "consent-en"
	cfg.Log.Level = "debug"
	cfg.Shutdown.Grace = 5 * time.Second
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	data, err := yaml.Marshal(&cfg)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	// Validate with the gateway's own loader, so a harness mistake reads as
	// one here rather than as a gateway that will not start.
	parsed, err := config.Parse(g.ConfigPath, data)
	if err != nil {
		t.Fatalf("generated config is invalid:\n%v\n%s", err, data)
	}
	g.Config = parsed
	if err := os.WriteFile(g.ConfigPath, data, 0o600); err != nil {
		t.Fatal(err)
	}

	g.env = append(cleanEnv(), "BLACKBOX_FERNET_KEYS="+g.FernetKey)
	g.env = append(g.env, opts.Env...)

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("blackbox log (%s):\n%s", g.logPath, tail(g.log.String(), 64<<10))
		}
	})
	t.Cleanup(func() { g.stop(t, true) })
	return g
}

// cleanEnv is this process's environment without BLACKBOX_* variables, so
// a developer's shell cannot change what a test runs against.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BLACKBOX_") {
			env = append(env, kv)
		}
	}
	return env
}

// newFernetKey returns a fresh 32-byte key, base64url as Fernet wants it.
func newFernetKey(t testing.TB) string {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return base64.URLEncoding.EncodeToString(k[:])
}

// Start runs `blackbox serve` on the gateway's directory and waits until
// /readyz answers 200. It fails the test if the process exits first.
func (g *Gateway) Start(t *testing.T) {
	t.Helper()
	if err := g.start(); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, tail(g.log.String(), 16<<10))
	}
}

func (g *Gateway) start() error {
	g.mu.Lock()
	if g.proc != nil {
		g.mu.Unlock()
		return errors.New("gateway already running")
	}
	g.runs++
	run := g.runs
	logFile, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		g.mu.Unlock()
		return err
	}
	out := io.MultiWriter(logFile, g.log)
	fmt.Fprintf(out, "===== run %d: %s serve --config %s\n", run, g.bin, g.ConfigPath)
	cmd := exec.Command(g.bin, "serve", "--config", g.ConfigPath)
	cmd.Dir = g.Dir
	cmd.Env = g.env
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		logFile.Close()
		g.mu.Unlock()
		return fmt.Errorf("start %s: %w", g.bin, err)
	}
	p := &gatewayProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	g.proc = p
	g.mu.Unlock()

	if err := g.waitReady(p); err != nil {
		return fmt.Errorf("blackbox (run %d) not ready: %w", run, err)
	}
	return nil
}

func (g *Gateway) waitReady(p *gatewayProc) error {
	deadline := time.Now().Add(g.readyTimeout)
	client := &http.Client{Timeout: time.Second}
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited before ready: %v", p.err)
		default:
		}
		resp, err := client.Get("http://" + g.HTTPAddr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("/readyz: %s %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no 200 from /readyz within %v (last: %s)", g.readyTimeout, last)
}

// Running says whether the current process is alive.
func (g *Gateway) Running() bool {
	g.mu.Lock()
	p := g.proc
	g.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits: the crash in crash tests.
func (g *Gateway) Kill(t *testing.T) {
	t.Helper()
	g.signal(t, syscall.SIGKILL, 10*time.Second)
}

// Stop sends SIGTERM and waits for a clean exit within the configured grace
// (plus a margin); a non-zero exit or a hang fails the test.
func (g *Gateway) Stop(t *testing.T) {
	t.Helper()
	g.stop(t, false)
}

// Restart is Stop (or nothing, after Kill) and Start on the same directory,
// config and ports.
func (g *Gateway) Restart(t *testing.T) {
	t.Helper()
	if g.Running() {
		g.Stop(t)
	}
	g.mu.Lock()
	g.proc = nil
	g.mu.Unlock()
	g.Start(t)
}

func (g *Gateway) stop(t *testing.T, cleanup bool) {
	t.Helper()
	g.mu.Lock()
	p := g.proc
	g.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.done:
		g.mu.Lock()
		g.proc = nil
		g.mu.Unlock()
		return
	default:
	}
	grace := g.Config.Shutdown.Grace + 5*time.Second
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil && !cleanup {
			t.Errorf("blackbox exited with %v after SIGTERM", p.err)
		}
	case <-time.After(grace):
		t.Errorf("blackbox still running %v after SIGTERM; killing it", grace)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	g.mu.Lock()
	g.proc = nil
	g.mu.Unlock()
}

func (g *Gateway) signal(t *testing.T, sig syscall.Signal, wait time.Duration) {
	t.Helper()
	g.mu.Lock()
	p := g.proc
	g.mu.Unlock()
	if p == nil {
		t.Fatal("gateway not running")
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		t.Fatalf("blackbox still running %v after %v", wait, sig)
	}
	g.mu.Lock()
	g.proc = nil
	g.mu.Unlock()
}

// Logs returns everything every run of the gateway printed so far.
func (g *Gateway) Logs() string { return g.log.String() }

// CLIResult is one finished CLI command.
type CLIResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// RunCLI runs `blackbox ARGS... --config FILE` with stdin and the gateway's
// environment, for tests of bad input that expect a non-zero exit.
func (g *Gateway) RunCLI(stdin string, args ...string) (CLIResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.bin, append(append([]string(nil), args...), "--config", g.ConfigPath)...)
	cmd.Dir = g.Dir
	cmd.Env = g.env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := CLIResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		res.ExitCode = exit.ExitCode()
	default:
		return res, fmt.Errorf("blackbox %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}

// CLI runs a CLI command that must succeed and returns its stdout.
func (g *Gateway) CLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	res, err := g.RunCLI(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("blackbox %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.ExitCode, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

// AddTenant runs `blackbox tenant add NAME [flags]`.
func (g *Gateway) AddTenant(t *testing.T, name string, flags ...string) string {
	t.Helper()
	return g.CLI(t, "", append([]string{"tenant", "add", name}, flags...)...)
}

// AddUser runs `blackbox user add` with the SIP password on stdin.
func (g *Gateway) AddUser(t *testing.T, tenant, username, password, role string, flags ...string) string {
	t.Helper()
	args := append([]string{"user", "add", "--tenant", tenant, "--username", username, "--role", role}, flags...)
	return g.CLI(t, password+"\n", args...)
}

// TrunkSpec is one `blackbox trunk add`.
type TrunkSpec struct {
	Tenant, Name, Address string
	Transport             string   // udp (default) or tcp
	Username, Password    string   // digest toward the trunk, optional
	InboundFrom           []string // CIDRs allowed to send inbound calls
}

// AddTrunk runs `blackbox trunk add` (password on stdin when set).
func (g *Gateway) AddTrunk(t *testing.T, s TrunkSpec) string {
	t.Helper()
	args := []string{"trunk", "add", "--tenant", s.Tenant, "--name", s.Name, "--address", s.Address}
	if s.Transport != "" {
		args = append(args, "--transport", s.Transport)
	}
	stdin := ""
	if s.Username != "" {
		args = append(args, "--username", s.Username, "--password-stdin")
		stdin = s.Password + "\n"
	}
	if len(s.InboundFrom) > 0 {
		args = append(args, "--inbound-from", strings.Join(s.InboundFrom, ","))
	}
	return g.CLI(t, stdin, args...)
}

// AddNumber runs `blackbox number add`.
func (g *Gateway) AddNumber(t *testing.T, tenant, number, user string) string {
	t.Helper()
	return g.CLI(t, "", "number", "add", "--tenant", tenant, "--number", number, "--user", user)
}

// Get fetches a path from the HTTP listener and returns status and body.
func (g *Gateway) Get(t *testing.T, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + g.HTTPAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// Metrics scrapes and parses /metrics.
func (g *Gateway) Metrics(t *testing.T) metricSet {
	t.Helper()
	code, body := g.Get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d", code)
	}
	m, err := parseMetrics(body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	return m
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail keeps the last n bytes of s, marking the cut.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "[... " + fmt.Sprint(len(s)-n) + " bytes cut ...]\n" + s[len(s)-n:]
}

// waitConsent waits until the gateway has recorded a consent outcome (the
// call is bridged from then on, or ended).
func (g *Gateway) waitConsent(t *testing.T, ctx context.Context) {
	t.Helper()
	for {
		if g.Metrics(t).Sum("blackbox_consent_events_total") >= 1 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("no consent outcome: the call was never bridged")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
