package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/config"
)

// standinGateway starts the harness against the stand-in binary.
func standinGateway(t *testing.T, configure func(*config.Config)) *Gateway {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startGateway(t, GatewayOptions{
		Binary:    exe,
		Env:       []string{standinEnv + "=1"},
		Configure: configure,
		RTPPorts:  20,
	})
}

// TestGatewayHarness proves startGateway and its helpers against the
// stand-in: a config the real loader accepts, readiness, CLI with stdin,
// bad-input exit codes, metrics, kill -9 and restart on the same directory.
func TestGatewayHarness(t *testing.T) {
	gw := standinGateway(t, func(c *config.Config) { c.Media.RTPTimeout = 7 * time.Second })

	// The config on disk is what the real loader sees.
	cfg, err := config.Load(gw.ConfigPath)
	if err != nil {
		t.Fatalf("config on disk: %v", err)
	}
	if cfg.Media.RTPTimeout != 7*time.Second {
		t.Errorf("Configure hook lost: rtp_timeout %v", cfg.Media.RTPTimeout)
	}
	if cfg.Media.PortMin != gw.RTPMin || cfg.Media.PortMax != gw.RTPMax || gw.RTPMax-gw.RTPMin+1 != 20 {
		t.Errorf("rtp range %d-%d, config %d-%d", gw.RTPMin, gw.RTPMax, cfg.Media.PortMin, cfg.Media.PortMax)
	}
	if !strings.HasPrefix(cfg.Store.DSN, "sqlite:"+gw.Dir) || !strings.HasPrefix(cfg.Objects.URL, "file:"+gw.Dir) {
		t.Errorf("store %q / objects %q outside the test dir %s", cfg.Store.DSN, cfg.Objects.URL, gw.Dir)
	}
	if p := cfg.Consent.Prompts[cfg.Consent.Prompt].File; !fileExists(p) || !strings.HasSuffix(p, "prompt-beep.wav") {
		t.Errorf("consent prompt %s: want the existing test beep", p)
	}

	// The SIP ports are held by the gateway process.
	if _, err := net.ListenPacket("udp", gw.SIPAddr); err == nil {
		t.Error("SIP UDP port is free while the gateway runs")
	}
	if code, body := gw.Get(t, "/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	m := gw.Metrics(t)
	if v, ok := m.Get("blackbox_build_info", "version", "standin"); !ok || v != 1 {
		t.Errorf("blackbox_build_info = %v, %v", v, ok)
	}
	if got := m.LabelValues("blackbox_calls_active", "direction"); strings.Join(got, ",") != "inbound,outbound" {
		t.Errorf("directions %v", got)
	}

	if out := gw.AddTenant(t, "acme"); !strings.Contains(out, "tenant acme created") {
		t.Errorf("tenant add: %q", out)
	}
	if out := gw.AddUser(t, "acme", "alice", "s3cret-pw", "rep"); !strings.Contains(out, "password of 9 bytes") ||
		!strings.Contains(out, "--username alice --role rep") {
		t.Errorf("user add did not get its password on stdin: %q", out)
	}
	res, err := gw.RunCLI("", "frobnicate")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "unknown command") {
		t.Errorf("bad command: exit %d, stderr %q", res.ExitCode, res.Stderr)
	}

	// kill -9 and a restart on the same directory, config and ports.
	gw.Kill(t)
	if gw.Running() {
		t.Fatal("still running after Kill")
	}
	gw.Restart(t)
	starts, err := os.ReadFile(filepath.Join(gw.Dir, "standin-starts"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(string(starts))); n != 2 {
		t.Errorf("%d starts recorded, want 2", n)
	}
	if code, _ := gw.Get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz after restart: %d", code)
	}
	gw.Stop(t)
	if !strings.Contains(gw.Logs(), "standin: stopped") || strings.Count(gw.Logs(), "===== run") != 2 {
		t.Errorf("logs do not show two runs and a clean stop:\n%s", gw.Logs())
	}
}

// TestGatewayHarnessStartFailure shows a gateway that dies at start fails
// fast with its own words, rather than after the readiness timeout.
func TestGatewayHarnessStartFailure(t *testing.T) {
	gw := &Gateway{}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A config path that does not exist: the stand-in refuses to start.
	gw.bin, gw.readyTimeout, gw.log = exe, 10*time.Second, &syncBuffer{}
	gw.Dir = t.TempDir()
	gw.logPath = filepath.Join(gw.Dir, "blackbox.log")
	gw.ConfigPath = filepath.Join(gw.Dir, "missing.yaml")
	gw.env = append(cleanEnv(), standinEnv+"=1")
	start := time.Now()
	err = gw.start()
	if err == nil {
		t.Fatal("start succeeded with a missing config")
	}
	if !strings.Contains(err.Error(), "exited before ready") {
		t.Errorf("error %q does not say the process exited", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v to notice the gateway died", time.Since(start))
	}
	if !strings.Contains(gw.Logs(), "standin: config") {
		t.Errorf("log lacks the gateway's own error:\n%s", gw.Logs())
	}
}
