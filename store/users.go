package store

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
)

// User is a rep, manager or owner of a tenant; reps register softphones.
type User struct {
	ID        string
	TenantID  string
	Username  string
	Role      Role
	CallerID  string // default E.164 presented on outbound calls ("" = first number)
	CreatedAt time.Time
}

// NewUser is what CreateUser needs. Password is hashed into HA1 digests for
// Realm and never stored.
type NewUser struct {
	Username string
	Role     Role
	CallerID string
	Realm    string
	Password string
}

var (
	usernameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	e164Re     = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// ValidE164 reports whether s is a syntactically valid E.164 number.
func ValidE164(s string) bool { return e164Re.MatchString(s) }

// MinPasswordLen is the shortest SIP password accepted: digest passwords
// face offline guessing from any captured REGISTER.
const MinPasswordLen = 10

// HA1 computes the digest HA1 for algorithm "MD5" or "SHA-256".
func HA1(algorithm, username, realm, password string) string {
	s := username + ":" + realm + ":" + password
	if algorithm == "SHA-256" {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// CreateUser adds a user to the scope's tenant.
func (s *Scope) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	if !usernameRe.MatchString(nu.Username) {
		return User{}, invalidf("username %q: use letters, digits, '.', '_', '+' or '-' (max 64)", nu.Username)
	}
	if _, err := ParseRole(string(nu.Role)); err != nil {
		return User{}, err
	}
	if nu.CallerID != "" && !ValidE164(nu.CallerID) {
		return User{}, invalidf("caller id %q: want E.164 such as +14155550100", nu.CallerID)
	}
	if len(nu.Password) < MinPasswordLen {
		return User{}, invalidf("password: at least %d characters", MinPasswordLen)
	}
	if nu.Realm == "" {
		return User{}, invalidf("realm is required")
	}
	u := User{ID: newID(), TenantID: s.p.tenantID, Username: nu.Username, Role: nu.Role, CallerID: nu.CallerID, CreatedAt: s.db.now().UTC()}
	err := s.write(ctx, func(q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO users (id, tenant_id, username, role, caller_id, realm, ha1_md5, ha1_sha256, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			u.ID, u.TenantID, u.Username, string(u.Role), u.CallerID, nu.Realm,
			HA1("MD5", nu.Username, nu.Realm, nu.Password), HA1("SHA-256", nu.Username, nu.Realm, nu.Password), ms(u.CreatedAt))
		if err != nil {
			return err
		}
		return s.audit(ctx, q, "user.create", "user:"+u.Username, map[string]any{"role": u.Role})
	})
	if err != nil {
		return User{}, fmt.Errorf("create user %s: %w", nu.Username, err)
	}
	return u, nil
}

// SetPassword replaces a user's digests.
func (s *Scope) SetPassword(ctx context.Context, username, realm, password string) error {
	if len(password) < MinPasswordLen {
		return invalidf("password: at least %d characters", MinPasswordLen)
	}
	return s.write(ctx, func(q querier) error {
		n, err := q.Exec(ctx, `UPDATE users SET realm = $1, ha1_md5 = $2, ha1_sha256 = $3 WHERE tenant_id = $4 AND username = $5`,
			realm, HA1("MD5", username, realm, password), HA1("SHA-256", username, realm, password), s.p.tenantID, username)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("user %s: %w", username, ErrNotFound)
		}
		return s.audit(ctx, q, "user.password", "user:"+username, nil)
	})
}

const userCols = `id, tenant_id, username, role, caller_id, created_at`

func scanUser(r row) (User, error) {
	var u User
	var role string
	var created int64
	err := r.Scan(&u.ID, &u.TenantID, &u.Username, &role, &u.CallerID, &created)
	u.Role, u.CreatedAt = Role(role), fromMS(created)
	return u, err
}

// User finds a user of the tenant by username.
func (s *Scope) User(ctx context.Context, username string) (User, error) {
	var u User
	err := s.read(ctx, func(q querier) error {
		var err error
		u, err = scanUser(q.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND username = $2`, s.p.tenantID, username))
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", username, err)
	}
	return u, nil
}

// UserByID finds a user of the tenant by id.
func (s *Scope) UserByID(ctx context.Context, id string) (User, error) {
	var u User
	err := s.read(ctx, func(q querier) error {
		var err error
		u, err = scanUser(q.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, id))
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// Users lists the tenant's users.
func (s *Scope) Users(ctx context.Context) ([]User, error) {
	var out []User
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanUser, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 ORDER BY username`, s.p.tenantID)
		return err
	})
	return out, err
}

// SIPAccount is what the registrar needs to check a digest response.
type SIPAccount struct {
	Principal Principal
	Realm     string
	HA1MD5    string
	HA1SHA256 string
}

// SIPAccount looks a digest username up across tenants. This is one of the
// few unscoped reads: it is how a SIP principal comes to exist. ErrNotFound
// for an unknown user; callers must answer it exactly like a wrong password.
func (db *DB) SIPAccount(ctx context.Context, username string) (SIPAccount, error) {
	var a SIPAccount
	err := db.sysRead(ctx, func(q querier) error {
		var role string
		err := q.QueryRow(ctx, `SELECT id, tenant_id, username, role, realm, ha1_md5, ha1_sha256 FROM users WHERE username = $1`, username).
			Scan(&a.Principal.userID, &a.Principal.tenantID, &a.Principal.username, &role, &a.Realm, &a.HA1MD5, &a.HA1SHA256)
		a.Principal.role = Role(role)
		a.Principal.kind = KindUser
		return err
	})
	if err != nil {
		return SIPAccount{}, err
	}
	return a, nil
}
