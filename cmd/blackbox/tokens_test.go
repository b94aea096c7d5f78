package main

import (
	"context"
	"strings"
	"testing"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/store"
)

func TestTokenCommands(t *testing.T) {
	cfg := testConfig(t)
	ok := func(stdin string, args ...string) (string, string) {
		t.Helper()
		code, out, errs := blackbox(t, stdin, append(args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("blackbox %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		return out, errs
	}
	ok("", "tenant", "add", "acme")
	ok("correct horse battery\n", "user", "add", "--tenant", "acme", "--username", "mia", "--role", "manager")

	secret, note := ok("", "token", "create", "--tenant", "acme", "--user", "mia", "--name", "crm", "--ttl", "48h")
	secret = strings.TrimSpace(secret)
	if !strings.HasPrefix(secret, store.TokenPrefix) || strings.Contains(secret, "\n") || !strings.Contains(note, "shown once") {
		t.Fatalf("token create printed %q / %q", secret, note)
	}
	// The printed token authenticates as mia.
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), c.Store.DSN, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := db.TokenPrincipal(context.Background(), secret)
	if err != nil || p.Username() != "mia" || p.Role() != store.RoleManager {
		t.Fatalf("principal %v %v", p, err)
	}

	list, _ := ok("", "token", "list", "--tenant", "acme")
	if !strings.Contains(list, "mia") || !strings.Contains(list, "crm") || !strings.Contains(list, "active") || strings.Contains(list, secret) {
		t.Fatalf("token list:\n%s", list)
	}
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	if out, _ := ok("", "token", "revoke", "--tenant", "acme", "--id", id); !strings.Contains(out, "revoked") {
		t.Fatalf("revoke printed %q", out)
	}
	if _, err := db.TokenPrincipal(context.Background(), secret); err == nil {
		t.Fatal("revoked token still authenticates")
	}
	if list, _ := ok("", "token", "list", "--tenant", "acme"); !strings.Contains(list, "revoked") {
		t.Fatalf("token list after revoke:\n%s", list)
	}

	for _, c := range []struct {
		want string
		args []string
	}{
		{"missing --user", []string{"token", "create", "--tenant", "acme"}},
		{"not found", []string{"token", "create", "--tenant", "acme", "--user", "nobody"}},
		{"exceeds the maximum", []string{"token", "create", "--tenant", "acme", "--user", "mia", "--ttl", "9000h"}},
		{"missing --id", []string{"token", "revoke", "--tenant", "acme"}},
		{"not found", []string{"token", "revoke", "--tenant", "acme", "--id", "nope"}},
		{"no tenant named", []string{"token", "list", "--tenant", "globex"}},
	} {
		code, _, errs := blackbox(t, "", append(c.args, "--config", cfg)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("blackbox %s: exit %d, stderr %q; want %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
}
