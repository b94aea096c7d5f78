package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrBadToken means an API token is unknown, expired or revoked. Callers
// answer all three alike, so a token's state never leaks.
var ErrBadToken = errors.New("API token is invalid, expired or revoked")

// TokenPrefix starts every API token, so a leaked one is recognisable by
// secret scanners.
const TokenPrefix = "bbk_"

// MaxTokenTTL bounds a token's lifetime: tokens are rotated at least yearly.
const MaxTokenTTL = 366 * 24 * time.Hour

// tokenBytes of randomness: guessing is hopeless, so a lookup by hash needs
// no rate limit to stay safe.
const tokenBytes = 32

// lastUsedEvery throttles the last-use stamp: one write a minute per token,
// not one per request.
const lastUsedEvery = time.Minute

// Token is an API token's record; the secret itself is never stored.
type Token struct {
	ID         string
	TenantID   string
	UserID     string
	Username   string
	Name       string
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	RevokedAt  time.Time // zero while valid
	RevokedBy  string
	LastUsedAt time.Time
}

// Active reports whether the token is usable at now.
func (t Token) Active(now time.Time) bool { return t.RevokedAt.IsZero() && now.Before(t.ExpiresAt) }

// NewToken is what CreateToken needs.
type NewToken struct {
	Username string        // the user the token acts as
	Name     string        // a label, e.g. "crm-sync"
	TTL      time.Duration // lifetime, at most MaxTokenTTL
}

func hashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// CreateToken issues a token for a user of the tenant and returns the
// secret, which exists nowhere else afterwards: show it once. Owners (and
// operators) only.
func (s *Scope) CreateToken(ctx context.Context, nt NewToken) (Token, string, error) {
	if err := s.require(RoleOwner, "create token"); err != nil {
		return Token{}, "", err
	}
	switch {
	case nt.TTL <= 0:
		return Token{}, "", invalidf("token lifetime must be positive")
	case nt.TTL > MaxTokenTTL:
		return Token{}, "", invalidf("token lifetime %s exceeds the maximum %s", nt.TTL, MaxTokenTTL)
	case len(nt.Name) > 64 || strings.ContainsAny(nt.Name, "\r\n\t"):
		return Token{}, "", invalidf("token name: at most 64 characters on one line")
	}
	var raw [tokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Token{}, "", fmt.Errorf("create token: %w", err)
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.db.now().UTC()
	t := Token{ID: newID(), TenantID: s.p.tenantID, Username: nt.Username, Name: nt.Name, CreatedBy: s.p.Actor(),
		CreatedAt: fromMS(ms(now)), ExpiresAt: fromMS(ms(now.Add(nt.TTL)))}
	err := s.write(ctx, func(q querier) error {
		if err := q.QueryRow(ctx, `SELECT id FROM users WHERE tenant_id = $1 AND username = $2`, s.p.tenantID, nt.Username).Scan(&t.UserID); err != nil {
			return fmt.Errorf("user %s: %w", nt.Username, err)
		}
		if _, err := q.Exec(ctx, `INSERT INTO api_tokens (id, tenant_id, user_id, name, token_sha256, created_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			t.ID, t.TenantID, t.UserID, t.Name, hashToken(secret), t.CreatedBy, ms(t.CreatedAt), ms(t.ExpiresAt)); err != nil {
			return err
		}
		return s.audit(ctx, q, "token.create", "user:"+nt.Username, map[string]any{
			"token": t.ID, "name": t.Name, "expires_at": t.ExpiresAt.Format(time.RFC3339)})
	})
	if err != nil {
		return Token{}, "", fmt.Errorf("create token for %s: %w", nt.Username, err)
	}
	return t, secret, nil
}

const tokenCols = `t.id, t.tenant_id, t.user_id, u.username, t.name, t.created_by, t.created_at, t.expires_at,
	t.revoked_at, t.revoked_by, t.last_used_at`

func scanToken(r row) (Token, error) {
	var t Token
	var created, expires, revoked, used int64
	err := r.Scan(&t.ID, &t.TenantID, &t.UserID, &t.Username, &t.Name, &t.CreatedBy, &created, &expires, &revoked, &t.RevokedBy, &used)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromMS(created), fromMS(expires), fromMS(revoked), fromMS(used)
	return t, err
}

// TokenFilter narrows Tokens.
type TokenFilter struct {
	Username string // one user's; "" for all
}

// Tokens lists the tenant's tokens, newest first, revoked and expired ones
// included (they are history).
func (s *Scope) Tokens(ctx context.Context, f TokenFilter) ([]Token, error) {
	if err := s.require(RoleOwner, "list tokens"); err != nil {
		return nil, err
	}
	var out []Token
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanToken, `SELECT `+tokenCols+` FROM api_tokens t JOIN users u ON u.id = t.user_id
			WHERE t.tenant_id = $1 AND ($2 = '' OR u.username = $2) ORDER BY t.id DESC LIMIT 1000`, s.p.tenantID, f.Username)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken ends a token of the tenant at once. Revoking a revoked token
// is a no-op that keeps the first revocation.
func (s *Scope) RevokeToken(ctx context.Context, id string) (Token, error) {
	if err := s.require(RoleOwner, "revoke token"); err != nil {
		return Token{}, err
	}
	var t Token
	err := s.write(ctx, func(q querier) error {
		var err error
		t, err = scanToken(q.QueryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens t JOIN users u ON u.id = t.user_id
			WHERE t.tenant_id = $1 AND t.id = $2`, s.p.tenantID, id))
		if err != nil || !t.RevokedAt.IsZero() {
			return err
		}
		t.RevokedAt, t.RevokedBy = fromMS(ms(s.db.now())), s.p.Actor()
		if _, err := q.Exec(ctx, `UPDATE api_tokens SET revoked_at = $3, revoked_by = $4 WHERE tenant_id = $1 AND id = $2`,
			s.p.tenantID, id, ms(t.RevokedAt), t.RevokedBy); err != nil {
			return err
		}
		return s.audit(ctx, q, "token.revoke", "user:"+t.Username, map[string]any{"token": t.ID, "name": t.Name})
	})
	if err != nil {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	return t, nil
}

// TokenPrincipal authenticates an API token: it mints the principal of the
// token's user, with the user's current role, if the token is known, not
// expired and not revoked. Any other token is ErrBadToken. This is one of
// the few unscoped reads: it is how an API principal comes to exist.
func (db *DB) TokenPrincipal(ctx context.Context, secret string) (Principal, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) != len(TokenPrefix)+base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return Principal{}, ErrBadToken
	}
	now := db.now()
	var (
		p             Principal
		id, role      string
		expires, used int64
		revoked       int64
	)
	err := db.sysRead(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT t.id, t.tenant_id, u.id, u.username, u.role, t.expires_at, t.revoked_at, t.last_used_at
			FROM api_tokens t JOIN users u ON u.id = t.user_id AND u.tenant_id = t.tenant_id
			WHERE t.token_sha256 = $1`, hashToken(secret)).
			Scan(&id, &p.tenantID, &p.userID, &p.username, &role, &expires, &revoked, &used)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return Principal{}, ErrBadToken
	case err != nil:
		return Principal{}, fmt.Errorf("authenticate token: %w", err)
	case revoked != 0 || ms(now) >= expires:
		return Principal{}, ErrBadToken
	}
	p.kind, p.role = KindUser, Role(role)
	if now.Sub(fromMS(used)) >= lastUsedEvery {
		// Best effort: a failed stamp must not fail the request it records.
		_ = db.sysWrite(ctx, func(q querier) error {
			_, err := q.Exec(ctx, `UPDATE api_tokens SET last_used_at = $2 WHERE id = $1`, id, ms(now))
			return err
		})
	}
	return p, nil
}
