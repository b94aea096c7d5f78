package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blackbox-gw/blackbox/store/secrets"
)

// testConfig writes a config whose store lives in a temp dir.
func testConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key, _ := secrets.Generate()
	t.Setenv(secrets.EnvKeys, key)
	cfg := filepath.Join(dir, "bb.yaml")
	body := "sip:\n  listen: [udp://127.0.0.1:0]\nstore:\n  dsn: sqlite:" + filepath.Join(dir, "bb.db") +
		"\nobjects:\n  url: file:" + filepath.Join(dir, "rec") + "\nsecrets:\n  key_file: " + filepath.Join(dir, "fernet.key") + "\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// blackbox runs the CLI in-process and returns exit code, stdout, stderr.
func blackbox(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestProvisioning(t *testing.T) {
	cfg := testConfig(t)
	ok := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errs := blackbox(t, stdin, append(args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("blackbox %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		return out
	}
	fails := func(want string, stdin string, args ...string) {
		t.Helper()
		code, _, errs := blackbox(t, stdin, append(args, "--config", cfg)...)
		if code == 0 || !strings.Contains(errs, want) {
			t.Fatalf("blackbox %s: exit %d, stderr %q; want failure mentioning %q", strings.Join(args, " "), code, errs, want)
		}
	}
	if out := ok("", "tenant", "add", "acme", "--default-country", "US"); !strings.Contains(out, "tenant acme created") {
		t.Fatalf("tenant add printed %q", out)
	}
	fails("already exists", "", "tenant", "add", "acme")
	fails("ISO 3166", "", "tenant", "add", "globex", "--default-country", "USA")
	if out := ok("s3cret-password\n", "user", "add", "--tenant", "acme", "--username", "alice", "--role", "rep", "--caller-id", "(415) 555-0100"); !strings.Contains(out, "caller id +14155550100") {
		t.Fatalf("user add printed %q", out)
	}
	fails("read from stdin", "", "user", "add", "--tenant", "acme", "--username", "bob", "--role", "rep")
	fails("role", "s3cret-password\n", "user", "add", "--tenant", "acme", "--username", "bob", "--role", "boss")
	fails("no tenant named", "s3cret-password\n", "user", "add", "--tenant", "nope", "--username", "bob", "--role", "rep")
	fails("missing --username", "s3cret-password\n", "user", "add", "--tenant", "acme")
	out := ok("carrier-pass\n", "trunk", "add", "--tenant", "acme", "--name", "carrier", "--address", "192.0.2.10:5060",
		"--username", "acme", "--password-stdin", "--inbound-from", "192.0.2.0/24,198.51.100.7")
	if !strings.Contains(out, "password sealed") || strings.Contains(out, "carrier-pass") {
		t.Fatalf("trunk add printed %q", out)
	}
	fails("go together", "", "trunk", "add", "--tenant", "acme", "--name", "t2", "--address", "192.0.2.10:5060", "--username", "x")
	fails("HOST:PORT", "", "trunk", "add", "--tenant", "acme", "--name", "t2", "--address", "192.0.2.10")
	fails("inbound-from", "", "trunk", "add", "--tenant", "acme", "--name", "t2", "--address", "192.0.2.10:5060", "--inbound-from", "not-a-cidr")
	if out := ok("", "number", "add", "--tenant", "acme", "--number", "+14155550100", "--user", "alice"); !strings.Contains(out, "+14155550100") {
		t.Fatalf("number add printed %q", out)
	}
	fails("already exists", "", "number", "add", "--tenant", "acme", "--number", "4155550100", "--user", "alice")
	fails("not found", "", "number", "add", "--tenant", "acme", "--number", "+14155550101", "--user", "nobody")
	fails("not a valid phone number", "", "number", "add", "--tenant", "acme", "--number", "call-me", "--user", "alice")

	var calls []map[string]any
	if err := json.Unmarshal([]byte(ok("", "calls", "list", "--tenant", "acme", "--json")), &calls); err != nil || len(calls) != 0 {
		t.Fatalf("calls list --json: %v %v", calls, err)
	}
	audit := ok("", "audit", "list", "--tenant", "acme")
	for _, action := range []string{"tenant.create", "user.create", "trunk.create", "number.add"} {
		if !strings.Contains(audit, action) {
			t.Errorf("audit log lacks %s:\n%s", action, audit)
		}
	}
	if strings.Contains(audit, "carrier-pass") || strings.Contains(audit, "s3cret-password") {
		t.Fatal("a secret reached the audit log")
	}
}

func TestUsage(t *testing.T) {
	if code, _, errs := blackbox(t, "", "frobnicate"); code != 2 || !strings.Contains(errs, "usage") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
	if code, _, errs := blackbox(t, "", "tenant", "add"); code != 2 || !strings.Contains(errs, "exactly one tenant NAME") {
		t.Fatalf("tenant add without name: %d %q", code, errs)
	}
	if code, out, _ := blackbox(t, "", "keygen"); code != 0 || len(strings.TrimSpace(out)) != 44 {
		t.Fatalf("keygen: %d %q", code, out)
	}
}

func TestConfigErrorsReachTheOperator(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("media:\n  rtp_ports: nope\n"), 0o600)
	code, _, errs := blackbox(t, "", "tenant", "list", "--config", bad)
	if code != 1 || !strings.Contains(errs, "bad.yaml:2:3: media.rtp_ports") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}
