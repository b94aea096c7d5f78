package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// baresip is the real softphone of the end-to-end tests: Debian's baresip
// 1.0 with no sound card. The microphone is aufile (a WAV played once, then
// silence), the speaker is ALSA's "null" device, and the sndfile filter
// dumps what was sent and heard to WAV files. It is driven through the
// ctrl_tcp module (netstring-framed JSON commands; events arrive on the same
// connection). The account is created with the uanew command once the
// control connection is up, so no registration event can be missed.

const baresipModules = "/usr/lib/baresip/modules"

// BaresipOptions configures one baresip.
type BaresipOptions struct {
	// User and Password are the account's SIP credentials.
	User, Password string
	// Registrar is HOST:PORT: the account's domain and where it registers.
	Registrar string
	// Transport is udp (default) or tcp.
	Transport string
	// AutoAnswer answers inbound calls at once (answermode=auto).
	AutoAnswer bool
	// Source is the WAV played as the microphone: 8 kHz, mono, 16-bit
	// (default testdata/audio/tone-440.wav).
	Source string
	// RegInterval is the registration interval (default 600 s).
	RegInterval time.Duration
}

// baresipEvent is one ctrl_tcp event.
type baresipEvent struct {
	Type       string `json:"type"`
	Class      string `json:"class"`
	AccountAOR string `json:"accountaor"`
	Direction  string `json:"direction"`
	PeerURI    string `json:"peeruri"`
	ID         string `json:"id"`
	Param      string `json:"param"`
}

type baresipMessage struct {
	baresipEvent
	Event    bool   `json:"event"`
	Response bool   `json:"response"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
}

// Baresip is one running baresip.
type Baresip struct {
	Dir      string
	SIPAddr  string // 127.0.0.1:port it listens on
	RTPMin   int
	RTPMax   int
	DumpDir  string // sndfile's WAV dumps
	Account  string // the uanew line
	ctrl     net.Conn
	cmd      *exec.Cmd
	done     chan struct{}
	output   *syncBuffer
	tokenSeq int

	mu        sync.Mutex
	events    []baresipEvent
	changed   chan struct{} // closed and replaced on every event or response
	responses map[string]baresipMessage
	readErr   error
}

// startBaresip writes a config directory, starts baresip, connects to its
// control port and creates the account (which starts registering when a
// Registrar and password are set). Everything stops at test end; the log
// is printed if the test failed.
func startBaresip(t *testing.T, o BaresipOptions) *Baresip {
	t.Helper()
	bin := requireTool(t, "baresip")
	if o.Source == "" {
		o.Source = repoPath("testdata", "audio", "tone-440.wav")
	}
	if o.RegInterval == 0 {
		o.RegInterval = 600 * time.Second
	}
	dir := filepath.Join(workDir(t), fmt.Sprintf("baresip-%s-%d", o.User, sippSeq.Add(1)))
	b := &Baresip{
		Dir:       dir,
		SIPAddr:   fmt.Sprintf("127.0.0.1:%d", freePortPair(t)), // TLS takes the next port
		DumpDir:   filepath.Join(dir, "dump"),
		done:      make(chan struct{}),
		output:    &syncBuffer{},
		changed:   make(chan struct{}),
		responses: map[string]baresipMessage{},
	}
	b.RTPMin, b.RTPMax = rtpPortRange(t, 20)
	ctrlAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if err := os.MkdirAll(b.DumpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := strings.Join([]string{
		"poll_method epoll",
		"sip_listen " + b.SIPAddr,
		"net_interface 127.0.0.1",
		"call_local_timeout 120",
		"call_max_calls 4",
		"audio_player alsa,null",
		"audio_alert alsa,null",
		"audio_source aufile," + o.Source,
		"ausrc_srate 8000",
		"auplay_srate 8000",
		"ausrc_channels 1",
		"auplay_channels 1",
		fmt.Sprintf("rtp_ports %d-%d", b.RTPMin, b.RTPMax),
		"rtcp_mux no",
		"module_path " + baresipModules,
		"module g711.so",
		"module aufile.so",
		"module alsa.so",
		"module sndfile.so",
		"snd_path " + b.DumpDir,
		"module_tmp account.so",
		"module_app menu.so",
		"module_app ctrl_tcp.so",
		"ctrl_tcp_listen " + ctrlAddr,
		"",
	}, "\n")
	for name, data := range map[string]string{"config": config, "accounts": "", "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	uri := "sip:" + o.User + "@" + o.Registrar
	if o.Transport == "tcp" {
		uri += ";transport=tcp"
	}
	params := []string{fmt.Sprintf("regint=%d", int(o.RegInterval.Seconds()))}
	if o.Password != "" {
		params = append(params, "auth_pass="+o.Password)
	}
	if o.AutoAnswer {
		params = append(params, "answermode=auto")
	}
	b.Account = "<" + uri + ">;" + strings.Join(params, ";")

	logFile, err := os.Create(filepath.Join(dir, "baresip.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", dir)
	cmd.Dir = dir
	out := io.MultiWriter(logFile, b.output)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start baresip: %v", err)
	}
	b.cmd = cmd
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(b.done)
	}()
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("===== baresip %s (dir %s)\n%s", b.Account, dir, tail(b.output.String(), 16<<10))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.connect(ctx, ctrlAddr); err != nil {
		t.Fatalf("baresip control port: %v\n%s", err, b.output.String())
	}
	if _, err := b.Command(ctx, "uanew", b.Account); err != nil {
		t.Fatalf("baresip uanew: %v", err)
	}
	return b
}

func (b *Baresip) connect(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			b.ctrl = conn
			go b.read(bufio.NewReader(conn))
			return nil
		}
		select {
		case <-b.done:
			return errors.New("baresip exited")
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// read decodes netstrings ("LEN:JSON,") until the connection closes.
func (b *Baresip) read(r *bufio.Reader) {
	var err error
	defer func() {
		b.mu.Lock()
		b.readErr = err
		close(b.changed)
		b.changed = nil
		b.mu.Unlock()
	}()
	for {
		var lenStr string
		if lenStr, err = r.ReadString(':'); err != nil {
			return
		}
		n, perr := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(lenStr, ":")))
		if perr != nil || n < 0 || n > 1<<20 {
			err = fmt.Errorf("bad netstring length %q", lenStr)
			return
		}
		buf := make([]byte, n+1)
		if _, err = io.ReadFull(r, buf); err != nil {
			return
		}
		if buf[n] != ',' {
			err = errors.New("netstring without trailing comma")
			return
		}
		var m baresipMessage
		if jerr := json.Unmarshal(buf[:n], &m); jerr != nil {
			err = fmt.Errorf("ctrl_tcp json: %w", jerr)
			return
		}
		b.mu.Lock()
		if m.Event {
			b.events = append(b.events, m.baresipEvent)
		}
		if m.Response {
			b.responses[m.Token] = m
		}
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
	}
}

// Command runs a baresip command (dial, hangup, accept, reginfo, ...) and
// returns its output; a command baresip refuses is an error.
func (b *Baresip) Command(ctx context.Context, command, params string) (string, error) {
	b.mu.Lock()
	b.tokenSeq++
	token := fmt.Sprintf("t%d", b.tokenSeq)
	b.mu.Unlock()
	msg, err := json.Marshal(map[string]string{"command": command, "params": params, "token": token})
	if err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(b.ctrl, "%d:%s,", len(msg), msg); err != nil {
		return "", fmt.Errorf("baresip %s: %w", command, err)
	}
	for {
		b.mu.Lock()
		resp, ok := b.responses[token]
		ch, readErr := b.changed, b.readErr
		b.mu.Unlock()
		if ok {
			if !resp.OK {
				return resp.Data, fmt.Errorf("baresip %s %s: refused: %s", command, params, resp.Data)
			}
			return resp.Data, nil
		}
		if ch == nil {
			return "", fmt.Errorf("baresip %s: control connection closed: %v", command, readErr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", fmt.Errorf("baresip %s: %w", command, ctx.Err())
		}
	}
}

// Events returns every event so far.
func (b *Baresip) Events() []baresipEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]baresipEvent(nil), b.events...)
}

// WaitEvent returns the first event (since the start) of one of types,
// or an error when ctx ends or baresip exits.
func (b *Baresip) WaitEvent(ctx context.Context, types ...string) (baresipEvent, error) {
	for {
		b.mu.Lock()
		for _, e := range b.events {
			for _, typ := range types {
				if e.Type == typ {
					b.mu.Unlock()
					return e, nil
				}
			}
		}
		ch := b.changed
		b.mu.Unlock()
		if ch == nil {
			return baresipEvent{}, fmt.Errorf("baresip: no %v event before the control connection closed", types)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return baresipEvent{}, fmt.Errorf("baresip: no %v event (saw %s): %w", types, b.eventTypes(), ctx.Err())
		}
	}
}

func (b *Baresip) eventTypes() string {
	var types []string
	for _, e := range b.Events() {
		types = append(types, e.Type)
	}
	return strings.Join(types, " ")
}

// WaitRegistered waits for REGISTER_OK; REGISTER_FAIL is an error.
func (b *Baresip) WaitRegistered(ctx context.Context) error {
	e, err := b.WaitEvent(ctx, "REGISTER_OK", "REGISTER_FAIL")
	if err != nil {
		return err
	}
	if e.Type == "REGISTER_FAIL" {
		return fmt.Errorf("baresip registration failed: %s", e.Param)
	}
	return nil
}

// Dial calls uri (sip:NUMBER@HOST:PORT) and waits for CALL_ESTABLISHED;
// CALL_CLOSED first is an error carrying baresip's reason.
func (b *Baresip) Dial(ctx context.Context, uri string) error {
	if _, err := b.Command(ctx, "dial", uri); err != nil {
		return err
	}
	e, err := b.WaitEvent(ctx, "CALL_ESTABLISHED", "CALL_CLOSED")
	if err != nil {
		return err
	}
	if e.Type == "CALL_CLOSED" {
		return fmt.Errorf("call to %s closed before it was established: %s", uri, e.Param)
	}
	return nil
}

// Hangup ends the current call and waits for CALL_CLOSED.
func (b *Baresip) Hangup(ctx context.Context) error {
	if _, err := b.Command(ctx, "hangup", ""); err != nil {
		return err
	}
	_, err := b.WaitEvent(ctx, "CALL_CLOSED")
	return err
}

// Heard reads the audio baresip decoded from the far end (sndfile's
// dump-*-dec.wav of the latest call). Read it after CALL_CLOSED.
func (b *Baresip) Heard(t *testing.T) *wavAudio {
	t.Helper()
	return b.dump(t, "-dec.wav")
}

func (b *Baresip) dump(t *testing.T, suffix string) *wavAudio {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(b.DumpDir, "dump-*"+suffix))
	if err != nil || len(matches) == 0 {
		t.Fatalf("baresip wrote no *%s in %s", suffix, b.DumpDir)
	}
	sort.Strings(matches) // names carry the call's start time
	w, err := readWAV(matches[len(matches)-1])
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// stop asks baresip to quit, then escalates: it waits for its un-REGISTER
// to be answered, which a finished test's registrar may never do.
func (b *Baresip) stop() {
	if b.ctrl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = b.Command(ctx, "quit", "")
		cancel()
	}
	for _, sig := range []syscall.Signal{0, syscall.SIGTERM, syscall.SIGKILL} {
		if sig != 0 {
			_ = syscall.Kill(-b.cmd.Process.Pid, sig)
		}
		select {
		case <-b.done:
			if b.ctrl != nil {
				b.ctrl.Close()
			}
			return
		case <-time.After(time.Second):
		}
	}
	<-b.done
	if b.ctrl != nil {
		b.ctrl.Close()
	}
}
