package main

import (
	"strings"
	"testing"

	"github.com/blackbox-gw/blackbox/store/pgtest"
	"github.com/blackbox-gw/blackbox/store/secrets"
)

// mustRun runs the CLI and fails the test unless it exits 0.
func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errs := blackbox(t, stdin, args...)
	if code != 0 {
		t.Fatalf("blackbox %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// rotateScenario provisions a trunk under one key, rotates to a second and
// drops the first, through the CLI alone.
func rotateScenario(t *testing.T, cfg string) {
	t.Helper()
	oldKey, _ := secrets.Generate()
	newKey, _ := secrets.Generate()
	t.Setenv(secrets.EnvKeys, oldKey)
	mustRun(t, "", "tenant", "add", "acme", "--config", cfg)
	mustRun(t, "carrier-pass-1\n", "trunk", "add", "--tenant", "acme", "--name", "carrier", "--address", "192.0.2.10:5060",
		"--username", "acme", "--password-stdin", "--config", cfg)

	// Under the new key alone the old secret cannot be opened.
	t.Setenv(secrets.EnvKeys, newKey)
	if code, _, errs := blackbox(t, "", "trunk", "list", "--tenant", "acme", "--config", cfg); code == 0 || !strings.Contains(errs, "cannot be decrypted") {
		t.Fatalf("trunk list before rotation under the new key alone: exit %d %q", code, errs)
	}
	if code, _, errs := blackbox(t, "", "secrets", "rotate", "--config", cfg); code == 0 || !strings.Contains(errs, "cannot be decrypted") {
		t.Fatalf("rotate without the old key: exit %d %q", code, errs)
	}

	t.Setenv(secrets.EnvKeys, newKey+","+oldKey)
	if out := mustRun(t, "", "secrets", "rotate", "--config", cfg); !strings.Contains(out, "resealed 1 secrets") || !strings.Contains(out, "in 1 tenants") {
		t.Fatalf("rotate printed %q", out)
	}
	if out := mustRun(t, "", "secrets", "rotate", "--config", cfg); !strings.Contains(out, "resealed 0 secrets under the first key (1 already under it)") {
		t.Fatalf("second rotate printed %q", out)
	}
	t.Setenv(secrets.EnvKeys, newKey)
	if out := mustRun(t, "", "trunk", "list", "--tenant", "acme", "--config", cfg); !strings.Contains(out, "carrier") {
		t.Fatalf("trunk list after rotation printed %q", out)
	}
	if out := mustRun(t, "", "audit", "list", "--tenant", "acme", "--action", "secrets.rotate", "--config", cfg); strings.Count(out, "secrets.rotate") != 2 {
		t.Fatalf("audit of the rotations:\n%s", out)
	}
}

func TestSecretsRotate(t *testing.T) {
	cfg := testConfig(t)
	rotateScenario(t, cfg)
	if code, _, errs := blackbox(t, "", "secrets", "rotate", "extra", "--config", cfg); code != 2 || !strings.Contains(errs, "no arguments") {
		t.Fatalf("rotate with an argument: exit %d %q", code, errs)
	}
	// No key at all: refused, and no key is invented for the occasion.
	t.Setenv(secrets.EnvKeys, "")
	if code, _, errs := blackbox(t, "", "secrets", "rotate", "--config", cfg); code != 1 || !strings.Contains(errs, "no Fernet key") {
		t.Fatalf("rotate without a key: exit %d %q", code, errs)
	}
}

func TestServeRefusesToStartWithoutAKey(t *testing.T) {
	cfg := testConfig(t)
	t.Setenv(secrets.EnvKeys, "")
	code, _, errs := blackbox(t, "", "serve", "--config", cfg)
	if code != 1 || !strings.Contains(errs, "refuses to start without a Fernet key") {
		t.Fatalf("serve without a key: exit %d %q", code, errs)
	}
}

// TestPostgresCLI runs migrate, provisioning and rotation against a real
// Postgres, as the production roles: blackbox_app, migrating as the owner.
func TestPostgresCLI(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t)
	t.Setenv("BLACKBOX_STORE_DSN", db.DSN)
	if out := mustRun(t, "", "migrate", "--config", cfg); !strings.Contains(out, "postgres store migrated to schema version") {
		t.Fatalf("migrate printed %q", out)
	}
	rotateScenario(t, cfg)
}
