package store_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/secrets"
	"github.com/blackbox-gw/blackbox/store/storetest"
)

// clocked opens a store on a test clock with tenants acme and globex and
// returns their operator scopes.
type clocked struct {
	db     *store.DB
	path   string
	clock  *storetest.Clock
	a, b   *store.Scope
	ta, tb store.Tenant
}

func openClocked(t *testing.T) *clocked {
	t.Helper()
	ctx := context.Background()
	key, _ := secrets.Generate()
	kr, err := secrets.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &clocked{clock: storetest.NewClock(time.UnixMilli(1_750_000_000_000).UTC())}
	h := newHarness(t, suiteBackend)
	c.path = h.path
	c.db, err = store.Open(ctx, h.dsn, store.Options{Keyring: kr, Now: c.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.db.Close() })
	if c.ta, err = c.db.CreateTenant(ctx, "acme", "US"); err != nil {
		t.Fatal(err)
	}
	if c.tb, err = c.db.CreateTenant(ctx, "globex", "US"); err != nil {
		t.Fatal(err)
	}
	pa, _ := c.db.AdminScope(ctx, "acme")
	pb, _ := c.db.AdminScope(ctx, "globex")
	c.a, c.b = c.db.In(pa), c.db.In(pb)
	return c
}

// user creates a user and returns its own scope, authenticated by a token.
func (c *clocked) user(t *testing.T, sc *store.Scope, name string, role store.Role) *store.Scope {
	t.Helper()
	ctx := context.Background()
	if _, err := sc.CreateUser(ctx, store.NewUser{Username: name, Role: role, Realm: "bb", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := sc.CreateToken(ctx, store.NewToken{Username: name, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.db.TokenPrincipal(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	return c.db.In(p)
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	c := openClocked(t)
	if _, err := c.a.CreateUser(ctx, store.NewUser{Username: "alice", Role: store.RoleManager, Realm: "bb", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	tok, secret, err := c.a.CreateToken(ctx, store.NewToken{Username: "alice", Name: "crm", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, store.TokenPrefix) || len(secret) != 47 {
		t.Fatalf("token %q: want bbk_ and 43 base64url characters", secret)
	}
	if _, other, _ := c.a.CreateToken(ctx, store.NewToken{Username: "alice", TTL: time.Hour}); other == secret {
		t.Fatal("two tokens are equal")
	}
	p, err := c.db.TokenPrincipal(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if p.TenantID() != c.ta.ID || p.Username() != "alice" || p.UserID() != tok.UserID || p.Role() != store.RoleManager || p.Kind() != store.KindUser {
		t.Fatalf("principal %+v", p)
	}

	// Any other string is refused alike.
	altered := []byte(secret)
	altered[10] ^= 1
	for _, bad := range []string{"", "bbk_", secret[:len(secret)-1], secret + "A", "xyz_" + secret[4:], string(altered), strings.ToUpper(secret)} {
		if _, err := c.db.TokenPrincipal(ctx, bad); !errors.Is(err, store.ErrBadToken) {
			t.Errorf("token %q: %v, want ErrBadToken", bad, err)
		}
	}

	// Only the hash is stored.
	raw, err := sql.Open("sqlite", c.path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var stored string
	if err := raw.QueryRow(`SELECT token_sha256 FROM api_tokens WHERE id = ?`, tok.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	if stored != hex.EncodeToString(sum[:]) {
		t.Fatalf("stored %q is not the token's SHA-256", stored)
	}
	var hits int
	raw.QueryRow(`SELECT COUNT(*) FROM api_tokens WHERE id || tenant_id || user_id || name || token_sha256 || created_by LIKE ?`, "%"+secret[4:]+"%").Scan(&hits)
	var auditHits int
	raw.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE details LIKE ?`, "%"+secret[4:]+"%").Scan(&auditHits)
	if hits != 0 || auditHits != 0 {
		t.Fatalf("the token itself was stored (%d token rows, %d audit rows)", hits, auditHits)
	}

	// Last use is stamped, at most once a minute.
	list, err := c.a.Tokens(ctx, store.TokenFilter{Username: "alice"})
	if err != nil || len(list) != 2 || list[1].ID != tok.ID || !list[1].LastUsedAt.Equal(c.clock.Now()) || list[1].Name != "crm" {
		t.Fatalf("tokens: %+v %v", list, err)
	}

	// Expiry.
	c.clock.Advance(time.Hour - time.Millisecond)
	if _, err := c.db.TokenPrincipal(ctx, secret); err != nil {
		t.Fatalf("token refused before expiry: %v", err)
	}
	c.clock.Advance(time.Millisecond)
	if _, err := c.db.TokenPrincipal(ctx, secret); !errors.Is(err, store.ErrBadToken) {
		t.Fatalf("expired token: %v", err)
	}

	// Revocation, by the token's tenant only.
	tok2, secret2, err := c.a.CreateToken(ctx, store.NewToken{Username: "alice", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.b.RevokeToken(ctx, tok2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant revokes: %v", err)
	}
	if l, _ := c.b.Tokens(ctx, store.TokenFilter{}); len(l) != 0 {
		t.Fatalf("other tenant lists %d tokens", len(l))
	}
	if _, err := c.db.TokenPrincipal(ctx, secret2); err != nil {
		t.Fatal(err)
	}
	r1, err := c.a.RevokeToken(ctx, tok2.ID)
	if err != nil || r1.RevokedAt.IsZero() || r1.RevokedBy != "admin" {
		t.Fatalf("revoke: %+v %v", r1, err)
	}
	if _, err := c.db.TokenPrincipal(ctx, secret2); !errors.Is(err, store.ErrBadToken) {
		t.Fatalf("revoked token: %v", err)
	}
	c.clock.Advance(time.Minute)
	if r2, err := c.a.RevokeToken(ctx, tok2.ID); err != nil || !r2.RevokedAt.Equal(r1.RevokedAt) {
		t.Fatalf("second revoke must keep the first: %+v %v", r2, err)
	}
	if ev, _ := c.a.AuditEvents(ctx, store.AuditFilter{Action: "token.revoke"}); len(ev) != 1 {
		t.Fatalf("revocations audited: %d, want 1", len(ev))
	}

	// Validation and tenancy of the user.
	for _, nt := range []store.NewToken{
		{Username: "alice", TTL: 0},
		{Username: "alice", TTL: store.MaxTokenTTL + time.Hour},
		{Username: "alice", TTL: time.Hour, Name: "two\nlines"},
	} {
		if _, _, err := c.a.CreateToken(ctx, nt); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("create %+v: %v, want ErrInvalid", nt, err)
		}
	}
	if _, _, err := c.b.CreateToken(ctx, store.NewToken{Username: "alice", TTL: time.Hour}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token for another tenant's user: %v", err)
	}
	if ev, _ := c.a.AuditEvents(ctx, store.AuditFilter{Action: "token.create"}); len(ev) != 3 {
		t.Fatalf("creations audited: %d, want 3", len(ev))
	}
}
