package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The gateway as Prometheus sees it: the real server scraping http.listen,
// and promtool's lint of the exposition.

// prometheusServer is one `prometheus` process with its own storage.
type prometheusServer struct {
	addr string
	log  string
}

// startPrometheus runs Prometheus scraping target (HOST:PORT, /metrics)
// every second as job blackbox, until the test ends.
func startPrometheus(t *testing.T, target string) *prometheusServer {
	t.Helper()
	bin := requireTool(t, "prometheus")
	dir := filepath.Join(workDir(t), "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: blackbox
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &prometheusServer{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), log: filepath.Join(dir, "prometheus.log")}
	out, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			data, _ := os.ReadFile(p.log)
			t.Logf("prometheus log (%s):\n%s", p.log, tail(string(data), 8<<10))
		}
	})
	if !eventually(30*time.Second, func() bool {
		select {
		case <-done:
			return true
		default:
		}
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatal("prometheus not ready within 30 s")
	}
	select {
	case <-done:
		data, _ := os.ReadFile(p.log)
		t.Fatalf("prometheus exited at start:\n%s", data)
	default:
	}
	return p
}

// query runs an instant query and returns each series' labels and value.
func (p *prometheusServer) query(t *testing.T, q string) []promSample {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("prometheus query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("prometheus query %s: %v %s %s", q, err, r.Status, r.Error)
	}
	var out []promSample
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			t.Fatalf("prometheus query %s: value %v", q, s.Value)
		}
		out = append(out, promSample{Labels: s.Metric, Value: v})
	}
	return out
}

type promSample struct {
	Labels map[string]string
	Value  float64
}

// TestGatewayPrometheus: a real Prometheus scrapes the gateway (up == 1)
// and, after one call, has blackbox_calls_total; promtool finds nothing
// wrong with the exposition's names and types.
func TestGatewayPrometheus(t *testing.T) {
	t.Parallel()
	fx := newCallFixture(t, GatewayOptions{})
	prom := startPrometheus(t, fx.gw.HTTPAddr)
	fx.pair(t, "uas-answer", SIPpOptions{}, "uac-call", SIPpOptions{Pause: 300 * time.Millisecond})

	var last []promSample
	if !eventually(20*time.Second, func() bool {
		last = prom.query(t, `up{job="blackbox"}`)
		return len(last) == 1 && last[0].Value == 1
	}) {
		t.Fatalf(`up{job="blackbox"} never 1: %+v`, last)
	}
	if !eventually(20*time.Second, func() bool {
		last = prom.query(t, `sum(blackbox_calls_total)`)
		return len(last) == 1 && last[0].Value >= 1
	}) {
		t.Fatalf("blackbox_calls_total never counted the call in Prometheus: %+v", last)
	}
	local := fx.gw.Metrics(t).Sum("blackbox_calls_total")
	if last[0].Value != local {
		t.Errorf("Prometheus has %v calls, /metrics says %v", last[0].Value, local)
	}

	promtool := requireTool(t, "promtool")
	code, body := fx.gw.Get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestPromtoolFindsProblems proves the lint above can fail: promtool
// reports a counter without _total.
func TestPromtoolFindsProblems(t *testing.T) {
	promtool := requireTool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader("# HELP blackbox_calls counted\n# TYPE blackbox_calls counter\nblackbox_calls 1\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "_total") {
		t.Errorf("promtool passed a counter without _total: %v\n%s", err, out)
	}
}
