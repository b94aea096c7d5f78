package media

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var loopback = netip.MustParseAddr("127.0.0.1")

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestEngine starts an engine on loopback with `pairs` port pairs in a
// random part of the port space below the kernel's ephemeral range (where
// the test phones live), so parallel test binaries rarely collide; when
// they do, bind failure moves on to the next pair.
func newTestEngine(t testing.TB, pairs int, mod func(*Options)) *Engine {
	t.Helper()
	base := 20000 + 2*rand.IntN(6000-pairs)
	opts := Options{
		BindAddr:     loopback,
		ExternalAddr: loopback,
		PortMin:      base,
		PortMax:      base + 2*pairs - 1,
		RTPTimeout:   0,
		Logger:       testLogger(t),
	}
	if mod != nil {
		mod(&opts)
	}
	e, err := NewEngine(opts)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func newTestSession(t testing.TB, e *Engine, opts SessionOptions) *Session {
	t.Helper()
	s, err := e.NewSession(opts)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func readSDP(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/sdp/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sdpLines turns SDP text into lines so tests can look for exact lines.
func sdpLines(b []byte) []string {
	return strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n")
}

func hasLine(b []byte, line string) bool {
	for _, l := range sdpLines(b) {
		if l == line {
			return true
		}
	}
	return false
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

func netipMustPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
