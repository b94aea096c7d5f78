// Package e2e holds Blackbox's end-to-end tests and their harness: the real
// binary driven by SIPp, baresip and Go RTP peers. Every file is a _test.go
// file, so nothing here ships in the binary.
package e2e

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	flagUpdate = flag.Bool("update", false, "rewrite generated fixtures (testdata/audio/*.pcap) instead of comparing them")
	flagKeep   = flag.Bool("e2e.keep", false, "keep every test's work directory and log its path")
)

// requireToolsEnv turns a missing tool from a skip into a failure: CI sets
// it so a machine without SIPp cannot pass by skipping everything.
const requireToolsEnv = "BLACKBOX_E2E_REQUIRE_TOOLS"

// binaryEnv names a prebuilt blackbox to test instead of building one.
const binaryEnv = "BLACKBOX_BIN"

// tool is an external program the end-to-end tests drive.
type tool struct {
	name, pkg string
}

var tools = []tool{
	{"sipp", "sip-tester"},
	{"baresip", "baresip"},
}

// harness is what TestMain prepares once for every test.
var harness struct {
	root     string            // module root
	binary   string            // built blackbox
	buildErr error             // why the build failed
	missing  map[string]string // tool name -> Debian package
}

func TestMain(m *testing.M) {
	if os.Getenv(standinEnv) != "" {
		// Re-executed as a stand-in for the blackbox binary (standin_test.go).
		os.Exit(standinMain(os.Args[1:]))
	}
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	harness.root = root

	harness.missing = map[string]string{}
	for _, tl := range tools {
		if _, err := exec.LookPath(tl.name); err != nil {
			harness.missing[tl.name] = tl.pkg
		}
	}
	if len(harness.missing) > 0 {
		var b strings.Builder
		b.WriteString("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n")
		for name, pkg := range harness.missing {
			fmt.Fprintf(&b, "!!! e2e: %s not found on PATH: tests that need it will SKIP.\n!!!      install it: apt-get install -y %s\n", name, pkg)
		}
		b.WriteString("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n")
		fmt.Fprint(os.Stderr, b.String())
	}

	tmp, err := os.MkdirTemp("", "blackbox-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if bin := os.Getenv(binaryEnv); bin != "" {
		harness.binary = bin
	} else {
		harness.binary, harness.buildErr = buildBinary(root, tmp)
		if harness.buildErr != nil {
			// Tests that need the binary fail with this; the others still run.
			fmt.Fprintln(os.Stderr, "e2e:", harness.buildErr)
		}
	}
	return m.Run()
}

// buildBinary builds ./cmd/blackbox once for the whole run.
func buildBinary(root, dir string) (string, error) {
	out := filepath.Join(dir, "blackbox")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/blackbox")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/blackbox: %w\n%s", err, stderr.String())
	}
	return out, nil
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// repoPath joins elems onto the module root.
func repoPath(elems ...string) string {
	return filepath.Join(append([]string{harness.root}, elems...)...)
}

// requireTool skips (loudly) or, under BLACKBOX_E2E_REQUIRE_TOOLS, fails a
// test whose external tool is missing.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	if pkg, ok := harness.missing[name]; ok {
		msg := fmt.Sprintf("!!! %s is not installed: this end-to-end test did NOT run. Install it: apt-get install -y %s", name, pkg)
		if os.Getenv(requireToolsEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return path
}

// requireBinary returns the built blackbox or fails the test with the build error.
func requireBinary(t testing.TB) string {
	t.Helper()
	if harness.buildErr != nil {
		t.Fatalf("blackbox binary unavailable: %v", harness.buildErr)
	}
	return harness.binary
}

// workDirs memoises workDir per test, so a test's gateway, SIPp processes
// and logs share one directory.
var workDirs sync.Map

// workDir is the test's directory (the same on every call), kept and logged
// under -e2e.keep.
func workDir(t testing.TB) string {
	t.Helper()
	if d, ok := workDirs.Load(t.Name()); ok {
		return d.(string)
	}
	var dir string
	if *flagKeep {
		var err error
		dir, err = os.MkdirTemp("", "blackbox-e2e-"+strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("work dir kept: %s", dir)
	} else {
		dir = t.TempDir()
	}
	workDirs.Store(t.Name(), dir)
	t.Cleanup(func() { workDirs.Delete(t.Name()) })
	return dir
}
