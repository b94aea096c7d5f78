package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// SIPp exit statuses worth naming (sipp(1)).
const (
	sippAllOK      = 0  // every call succeeded
	sippSomeFailed = 1  // at least one call failed
	sippNoCalls    = 99 // normal exit without any call processed
)

// sippPcapDir holds the pcaps Debian's sip-tester ships.
const sippPcapDir = "/usr/share/sip-tester"

// SIPpOptions describes one SIPp process. Zero values pick sensible
// defaults; see runSIPp for the keywords every scenario gets.
type SIPpOptions struct {
	// Remote is HOST:PORT to send to (UAC scenarios); empty for a UAS that waits.
	Remote string
	// Transport is udp (default) or tcp (one connection per SIPp: -t t1).
	Transport string
	// LocalIP is the loopback address SIPp binds for SIP and media (-i,
	// -mi); default 127.0.0.1. A carrier on 127.0.0.2 is told apart from
	// reps by its source address, as a real trunk is.
	LocalIP string
	// LocalPort is -p; 0 picks a free port.
	LocalPort int
	// MediaPort is -mp, SIPp's own RTP socket (SIPp also binds the next
	// three ports); 0 picks a free block.
	MediaPort int
	// Service is -s: the user part of the Request-URI (the callee, or the
	// registering user).
	Service string
	// AuthUser and AuthPass are -au/-ap: the credentials [authentication]
	// answers digest challenges with.
	AuthUser, AuthPass string
	// Keys are -key KEY VALUE: scenario keywords such as [rtp_port].
	Keys map[string]string
	// Calls is -m (default 1).
	Calls int
	// Pause is -d: the length of every <pause/> without its own duration.
	Pause time.Duration
	// Timeout is -timeout with -timeout_error: SIPp fails past it (default 30 s).
	Timeout time.Duration
	// OOCScenario is -oocsf: the scenario that handles requests outside any
	// call SIPp started, e.g. the INVITE reaching a registered rep.
	OOCScenario string
	// Args are passed verbatim after everything else.
	Args []string
}

// SIPp is one sipp process.
type SIPp struct {
	Scenario  string // absolute path
	Dir       string // its working directory and logs
	LocalAddr string // IP:port it sends from and listens on
	MediaAddr netip.AddrPort
	Keys      map[string]string // every -key passed

	cmd      *exec.Cmd
	done     chan struct{}
	exitCode int
	waitErr  error
	msgLog   string
	errLog   string
	screen   string
	output   string
}

var sippSeq atomic.Int64

// scenarioPath resolves a scenario name ("uac-call" or "uac-call.xml") to
// testdata/sipp; paths with a slash are taken as they are.
func scenarioPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	if !strings.HasSuffix(name, ".xml") {
		name += ".xml"
	}
	return repoPath("testdata", "sipp", name)
}

// audioPath resolves a pcap name: bare names live in testdata/audio, or in
// sip-tester's directory for its own (g711a.pcap, dtmf_2833_1.pcap, ...).
func audioPath(name string) string {
	if name == "" || strings.Contains(name, "/") {
		return name
	}
	if p := repoPath("testdata", "audio", name); fileExists(p) {
		return p
	}
	return filepath.Join(sippPcapDir, name)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runSIPp runs a scenario to its end and returns the finished process;
// ExitCode() is 0 when every call succeeded. Logs (-trace_msg, -trace_err,
// the final screen) are printed if the test fails.
//
// Every scenario gets these keywords unless o.Keys overrides them:
// rtp_ip=LocalIP and rtp_port=the -mp port (the SDP address of scenarios
// that play no audio themselves; point it at an rtpPeer), caller=AuthUser or
// "sipp", audio=g711a.pcap, dtmf=dtmf_2833_1.pcap, expires=3600, and pt and
// codec read from the audio pcap's first packet (8/PCMA for g711a.pcap).
// Scenarios that play audio put SIPp's own socket ([media_ip]:[media_port],
// the -mp port, MediaAddr) in their SDP instead.
func runSIPp(t *testing.T, ctx context.Context, scenario string, o SIPpOptions) *SIPp {
	t.Helper()
	s := startSIPpProcess(t, ctx, scenario, o)
	s.Wait(t)
	return s
}

// startSIPp starts a scenario in the background. For a UAS (no Remote) it
// returns once SIPp listens on its SIP port; for a UAC, once it started.
func startSIPp(t *testing.T, ctx context.Context, scenario string, o SIPpOptions) *SIPp {
	t.Helper()
	s := startSIPpProcess(t, ctx, scenario, o)
	if o.Remote == "" {
		network := "udp"
		if o.Transport == "tcp" {
			network = "tcp"
		}
		if err := s.waitListening(network, 10*time.Second); err != nil {
			t.Fatalf("sipp %s: %v", filepath.Base(s.Scenario), err)
		}
	}
	return s
}

func startSIPpProcess(t *testing.T, ctx context.Context, scenario string, o SIPpOptions) *SIPp {
	t.Helper()
	bin := requireTool(t, "sipp")
	path := scenarioPath(scenario)
	if !fileExists(path) {
		t.Fatalf("sipp scenario %s not found", path)
	}
	n := sippSeq.Add(1)
	name := strings.TrimSuffix(filepath.Base(path), ".xml")
	dir := filepath.Join(workDir(t), fmt.Sprintf("sipp-%02d-%s", n, name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if o.LocalPort == 0 {
		o.LocalPort = freePort(t)
	}
	if o.MediaPort == 0 {
		o.MediaPort = sippMediaPort(t)
	}
	if o.Calls == 0 {
		o.Calls = 1
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.LocalIP == "" {
		o.LocalIP = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(o.LocalIP)
	if err != nil {
		t.Fatalf("sipp LocalIP: %v", err)
	}
	keys := map[string]string{
		"rtp_ip":   o.LocalIP,
		"rtp_port": strconv.Itoa(o.MediaPort),
		"caller":   "sipp",
		"audio":    "g711a.pcap",
		"dtmf":     "dtmf_2833_1.pcap",
		"expires":  "3600",
	}
	if o.AuthUser != "" {
		keys["caller"] = o.AuthUser
	}
	maps.Copy(keys, o.Keys)
	keys["audio"], keys["dtmf"] = audioPath(keys["audio"]), audioPath(keys["dtmf"])
	if _, set := o.Keys["pt"]; !set {
		codec, err := pcapCodec(keys["audio"])
		if err != nil {
			t.Fatalf("sipp audio key: %v", err)
		}
		keys["pt"], keys["codec"] = strconv.Itoa(int(codec.PayloadType)), codec.Name
	}

	s := &SIPp{
		Scenario:  path,
		Dir:       dir,
		LocalAddr: netip.AddrPortFrom(ip, uint16(o.LocalPort)).String(),
		MediaAddr: netip.AddrPortFrom(ip, uint16(o.MediaPort)),
		Keys:      keys,
		done:      make(chan struct{}),
		msgLog:    filepath.Join(dir, "messages.log"),
		errLog:    filepath.Join(dir, "errors.log"),
		screen:    filepath.Join(dir, "screen.log"),
		output:    filepath.Join(dir, "output.log"),
	}

	args := []string{
		"-sf", path,
		"-i", o.LocalIP,
		"-p", strconv.Itoa(o.LocalPort),
		"-mi", o.LocalIP,
		"-mp", strconv.Itoa(o.MediaPort),
		"-cp", strconv.Itoa(freeUDPPort(t)),
		"-m", strconv.Itoa(o.Calls),
		"-timeout", fmt.Sprintf("%dms", o.Timeout.Milliseconds()), "-timeout_error",
		"-nostdin",
		"-trace_msg", "-message_file", s.msgLog,
		"-trace_err", "-error_file", s.errLog,
		"-trace_screen", "-screen_file", s.screen,
	}
	switch o.Transport {
	case "", "udp":
		args = append(args, "-t", "u1")
	case "tcp":
		args = append(args, "-t", "t1")
	default:
		t.Fatalf("sipp transport %q: want udp or tcp", o.Transport)
	}
	if o.Service != "" {
		args = append(args, "-s", o.Service)
	}
	if o.AuthUser != "" {
		args = append(args, "-au", o.AuthUser)
	}
	if o.AuthPass != "" {
		args = append(args, "-ap", o.AuthPass)
	}
	if o.Service != "" && o.Remote != "" && invitesService(path) {
		// SIPp's digest uri defaults to sip:REMOTE, not the INVITE's
		// Request-URI sip:SERVICE@REMOTE; a server checking that the two
		// match (RFC 3261 §22.4) would refuse the credentials.
		args = append(args, "-auth_uri", o.Service+"@"+o.Remote)
	}
	if o.Pause > 0 {
		args = append(args, "-d", fmt.Sprintf("%dms", o.Pause.Milliseconds()))
	}
	if o.OOCScenario != "" {
		args = append(args, "-oocsf", scenarioPath(o.OOCScenario))
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		args = append(args, "-key", k, keys[k])
	}
	args = append(args, o.Args...)
	if o.Remote != "" {
		args = append(args, o.Remote)
	}

	out, err := os.Create(s.output)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	// SIPp's pcap player runs in threads of its own; a process group lets
	// cleanup end everything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start sipp: %v", err)
	}
	s.cmd = cmd
	go func() {
		err := cmd.Wait()
		out.Close()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			s.exitCode = exit.ExitCode()
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				s.exitCode = -1
				s.waitErr = err
			}
		default:
			s.exitCode, s.waitErr = -1, err
		}
		close(s.done)
	}()
	stopCtx := context.AfterFunc(ctx, func() { s.kill() })
	t.Cleanup(func() {
		stopCtx()
		select {
		case <-s.done:
		default:
			s.kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("%s", s.Report())
		}
	})
	t.Logf("sipp %s (dir %s): %s", name, dir, strings.Join(args, " "))
	return s
}

func (s *SIPp) kill() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Wait blocks until SIPp exits and returns its exit status.
func (s *SIPp) Wait(t *testing.T) int {
	t.Helper()
	<-s.done
	return s.exitCode
}

// Done is closed when the process has exited.
func (s *SIPp) Done() <-chan struct{} { return s.done }

// ExitCode is SIPp's exit status once Done (-1 if killed by a signal).
func (s *SIPp) ExitCode() int {
	<-s.done
	return s.exitCode
}

// Stop kills SIPp (the whole process group) and waits.
func (s *SIPp) Stop() {
	s.kill()
	<-s.done
}

// RequireSuccess fails the test unless SIPp exited 0 (all calls succeeded).
func (s *SIPp) RequireSuccess(t *testing.T) {
	t.Helper()
	if code := s.Wait(t); code != sippAllOK {
		t.Fatalf("sipp %s exited %d (want 0: every call succeeded)%s", filepath.Base(s.Scenario), code, s.firstErrors())
	}
}

func (s *SIPp) firstErrors() string {
	b, err := os.ReadFile(s.errLog)
	if err != nil || len(b) == 0 {
		return ""
	}
	return "\nsipp errors:\n" + tail(string(b), 2048)
}

// Report is every log of this SIPp, for a failing test's output.
func (s *SIPp) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "===== sipp %s, exit %d (%v), dir %s\n", filepath.Base(s.Scenario), s.exitCode, s.waitErr, s.Dir)
	for _, f := range []struct{ name, path string }{
		{"errors", s.errLog}, {"messages", s.msgLog}, {"screen", s.screen}, {"output", s.output},
	} {
		data, err := os.ReadFile(f.path)
		if err != nil || len(data) == 0 {
			continue
		}
		limit := 16 << 10
		if f.name == "output" {
			limit = 2 << 10 // the live screen repeats itself
		}
		fmt.Fprintf(&b, "----- %s (%s)\n%s\n", f.name, f.path, tail(string(data), limit))
	}
	return b.String()
}

// Messages parses the -trace_msg log written so far.
func (s *SIPp) Messages(t *testing.T) []sipMessage {
	t.Helper()
	data, err := os.ReadFile(s.msgLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return parseSIPpMessages(string(data))
}

// WaitForMessage polls the message log until match reports true for some
// message or ctx ends. SIPp flushes its message log per message.
func (s *SIPp) WaitForMessage(ctx context.Context, match func(sipMessage) bool) (sipMessage, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		data, _ := os.ReadFile(s.msgLog)
		for _, m := range parseSIPpMessages(string(data)) {
			if match(m) {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return sipMessage{}, fmt.Errorf("sipp %s: no matching message: %w", filepath.Base(s.Scenario), ctx.Err())
		case <-s.done:
			data, _ := os.ReadFile(s.msgLog)
			for _, m := range parseSIPpMessages(string(data)) {
				if match(m) {
					return m, nil
				}
			}
			return sipMessage{}, fmt.Errorf("sipp %s exited %d without a matching message", filepath.Base(s.Scenario), s.exitCode)
		case <-tick.C:
		}
	}
}

// waitListening waits until SIPp's SIP socket is bound (read from
// /proc/net, which never disturbs the socket), or SIPp exits.
func (s *SIPp) waitListening(network string, timeout time.Duration) error {
	_, portStr, _ := strings.Cut(s.LocalAddr, ":")
	port, _ := strconv.Atoi(portStr)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("exited %d before listening%s", s.exitCode, s.firstErrors())
		default:
		}
		bound, err := portBound(network, port)
		if err != nil {
			// No /proc: give SIPp the time it needs on a slow machine.
			time.Sleep(500 * time.Millisecond)
			return nil
		}
		if bound {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s/%d after %v", network, port, timeout)
}

// portBound reports whether any socket is bound to port (TCP: listening).
func portBound(network string, port int) (bool, error) {
	files := map[string][]string{
		"udp": {"/proc/net/udp", "/proc/net/udp6"},
		"tcp": {"/proc/net/tcp", "/proc/net/tcp6"},
	}[network]
	want := fmt.Sprintf(":%04X", port)
	read := false
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		read = true
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || !strings.HasSuffix(fields[1], want) {
				continue
			}
			if network == "tcp" && fields[3] != "0A" { // LISTEN
				continue
			}
			return true, nil
		}
	}
	if !read {
		return false, errors.New("no /proc/net")
	}
	return false, nil
}

// invitesService says whether a scenario sends INVITE sip:[service]@REMOTE.
func invitesService(path string) bool {
	data, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(data), "INVITE sip:[service]@[remote_ip]:[remote_port]")
}

// pcapCodec reads the payload type of a pcap's first packet.
func pcapCodec(path string) (g711Codec, error) {
	pkts, err := pcapRTP(path)
	if err != nil {
		return g711Codec{}, err
	}
	return codecByPT(pkts[0].PayloadType)
}
