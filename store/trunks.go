package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrUnknownSource means an inbound INVITE came from no trunk's address.
var ErrUnknownSource = errors.New("source matches no trunk")

// Trunk is a carrier SIP trunk of a tenant.
type Trunk struct {
	ID          string
	TenantID    string
	Name        string
	Address     string // HOST:PORT
	Transport   string // udp or tcp
	Username    string
	Password    string // opened from its Fernet token only by Trunk/Trunks
	InboundFrom []netip.Prefix
	CreatedAt   time.Time
}

// NewTrunk is what CreateTrunk needs.
type NewTrunk struct {
	Name        string
	Address     string
	Transport   string
	Username    string
	Password    string
	InboundFrom []netip.Prefix
}

var trunkNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ParseCIDRs parses "10.0.0.0/8,192.0.2.7" (a bare address is a /32 or /128).
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, invalidf("inbound-from %q: not an address or CIDR", part)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, invalidf("inbound-from %q: %v", part, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func formatCIDRs(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// CreateTrunk adds a trunk; its password is sealed with the keyring.
func (s *Scope) CreateTrunk(ctx context.Context, nt NewTrunk) (Trunk, error) {
	if !trunkNameRe.MatchString(nt.Name) {
		return Trunk{}, invalidf("trunk name %q: use letters, digits, '.', '_' or '-'", nt.Name)
	}
	host, port, err := net.SplitHostPort(nt.Address)
	if err != nil || host == "" {
		return Trunk{}, invalidf("trunk address %q: want HOST:PORT", nt.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return Trunk{}, invalidf("trunk address %q: bad port", nt.Address)
	}
	switch nt.Transport {
	case "":
		nt.Transport = "udp"
	case "udp", "tcp":
	default:
		return Trunk{}, invalidf("trunk transport %q: want udp or tcp", nt.Transport)
	}
	if (nt.Username == "") != (nt.Password == "") {
		return Trunk{}, invalidf("trunk credentials: username and password go together")
	}
	sealed := ""
	if nt.Password != "" {
		if sealed, err = s.db.keys.Seal(nt.Password); err != nil {
			return Trunk{}, fmt.Errorf("create trunk %s: %w", nt.Name, err)
		}
	}
	t := Trunk{ID: newID(), TenantID: s.p.tenantID, Name: nt.Name, Address: nt.Address, Transport: nt.Transport,
		Username: nt.Username, Password: nt.Password, InboundFrom: nt.InboundFrom, CreatedAt: s.db.now().UTC()}
	err = s.write(ctx, func(q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO trunks (id, tenant_id, name, address, transport, username, password_sealed, inbound_from, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			t.ID, t.TenantID, t.Name, t.Address, t.Transport, t.Username, sealed, formatCIDRs(t.InboundFrom), ms(t.CreatedAt))
		if err != nil {
			return err
		}
		return s.audit(ctx, q, "trunk.create", "trunk:"+t.Name, map[string]any{"address": t.Address, "inbound_from": formatCIDRs(t.InboundFrom)})
	})
	if err != nil {
		return Trunk{}, fmt.Errorf("create trunk %s: %w", nt.Name, err)
	}
	return t, nil
}

const trunkCols = `id, tenant_id, name, address, transport, username, password_sealed, inbound_from, created_at`

type sealedTrunk struct {
	Trunk
	sealed string
}

func scanTrunk(r row) (sealedTrunk, error) {
	var t sealedTrunk
	var cidrs string
	var created int64
	if err := r.Scan(&t.ID, &t.TenantID, &t.Name, &t.Address, &t.Transport, &t.Username, &t.sealed, &cidrs, &created); err != nil {
		return t, err
	}
	t.CreatedAt = fromMS(created)
	var err error
	if t.InboundFrom, err = ParseCIDRs(cidrs); err != nil {
		return t, fmt.Errorf("trunk %s: stored %w", t.Name, err)
	}
	return t, nil
}

func (db *DB) openTrunk(t sealedTrunk) (Trunk, error) {
	if t.sealed == "" {
		return t.Trunk, nil
	}
	pw, err := db.keys.Open(t.sealed)
	if err != nil {
		return Trunk{}, fmt.Errorf("trunk %s password: %w", t.Name, err)
	}
	t.Password = pw
	return t.Trunk, nil
}

// Trunks lists the tenant's trunks, by name, passwords opened.
func (s *Scope) Trunks(ctx context.Context) ([]Trunk, error) {
	var sealed []sealedTrunk
	err := s.read(ctx, func(q querier) error {
		var err error
		sealed, err = collect(ctx, q, scanTrunk, `SELECT `+trunkCols+` FROM trunks WHERE tenant_id = $1 ORDER BY name`, s.p.tenantID)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Trunk, 0, len(sealed))
	for _, st := range sealed {
		t, err := s.db.openTrunk(st)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Trunk finds one trunk by id, password opened.
func (s *Scope) Trunk(ctx context.Context, id string) (Trunk, error) {
	var st sealedTrunk
	err := s.read(ctx, func(q querier) error {
		var err error
		st, err = scanTrunk(q.QueryRow(ctx, `SELECT `+trunkCols+` FROM trunks WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, id))
		return err
	})
	if err != nil {
		return Trunk{}, fmt.Errorf("trunk %s: %w", id, err)
	}
	return s.db.openTrunk(st)
}

// TrunksFrom authenticates a carrier by source address: the principals of
// every trunk whose inbound-from list holds src (several tenants may share a
// carrier). This unscoped read is how a trunk principal comes to exist; the
// dialled DID is then looked up inside each principal's scope.
// ErrUnknownSource when no trunk matches (answer 403).
func (db *DB) TrunksFrom(ctx context.Context, src netip.Addr) ([]Principal, error) {
	var trunks []sealedTrunk
	err := db.sysRead(ctx, func(q querier) error {
		var err error
		trunks, err = collect(ctx, q, scanTrunk, `SELECT `+trunkCols+` FROM trunks WHERE inbound_from <> '' ORDER BY created_at, id`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("trunks from %s: %w", src, err)
	}
	src = src.Unmap()
	var out []Principal
	for _, t := range trunks {
		for _, p := range t.InboundFrom {
			if p.Contains(src) {
				out = append(out, Principal{tenantID: t.TenantID, kind: KindTrunk, trunkID: t.ID})
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("inbound from %s: %w", src, ErrUnknownSource)
	}
	return out, nil
}
