package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Tenant is one customer workspace.
type Tenant struct {
	ID             string
	Name           string
	DefaultCountry string // ISO 3166 alpha-2, for national numbers
	CreatedAt      time.Time
}

var tenantNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CreateTenant adds a tenant. Operators do this from the CLI.
func (db *DB) CreateTenant(ctx context.Context, name, defaultCountry string) (Tenant, error) {
	if !tenantNameRe.MatchString(name) {
		return Tenant{}, invalidf("tenant name %q: use letters, digits, '.', '_' or '-' (max 63)", name)
	}
	country := strings.ToUpper(defaultCountry)
	if len(country) != 2 || strings.Trim(country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return Tenant{}, invalidf("default country %q: want an ISO 3166 alpha-2 code such as US", defaultCountry)
	}
	t := Tenant{ID: newID(), Name: name, DefaultCountry: country, CreatedAt: db.now().UTC()}
	err := db.sysWrite(ctx, func(q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO tenants (id, name, default_country, created_at) VALUES ($1, $2, $3, $4)`,
			t.ID, t.Name, t.DefaultCountry, ms(t.CreatedAt))
		if err != nil {
			return err
		}
		return insertAudit(ctx, q, db.now(), t.ID, string(KindAdmin), "tenant.create", "tenant:"+t.Name, map[string]any{"default_country": country})
	})
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant %s: %w", name, err)
	}
	return t, nil
}

// AdminScope is the principal of an operator acting on a tenant from the
// host's CLI (which already holds the database credentials).
func (db *DB) AdminScope(ctx context.Context, tenantName string) (Principal, error) {
	var id string
	err := db.sysRead(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT id FROM tenants WHERE name = $1`, tenantName).Scan(&id)
	})
	if err != nil {
		return Principal{}, fmt.Errorf("tenant %s: %w", tenantName, err)
	}
	return Principal{tenantID: id, kind: KindAdmin}, nil
}

// Tenants lists every tenant (operators, sweeps).
func (db *DB) Tenants(ctx context.Context) ([]Tenant, error) {
	var out []Tenant
	err := db.sysRead(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanTenant, `SELECT id, name, default_country, created_at FROM tenants ORDER BY name`)
		return err
	})
	return out, err
}

// Tenant returns the scope's own tenant.
func (s *Scope) Tenant(ctx context.Context) (Tenant, error) {
	var t Tenant
	err := s.read(ctx, func(q querier) error {
		var err error
		t, err = scanTenant(q.QueryRow(ctx, `SELECT id, name, default_country, created_at FROM tenants WHERE id = $1`, s.p.tenantID))
		return err
	})
	return t, err
}

func scanTenant(r row) (Tenant, error) {
	var t Tenant
	var created int64
	err := r.Scan(&t.ID, &t.Name, &t.DefaultCountry, &created)
	t.CreatedAt = fromMS(created)
	return t, err
}
