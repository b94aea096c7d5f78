package store

// Role is what a user may do inside its tenant.
type Role string

// The three roles, from least to most privileged.
const (
	RoleRep     Role = "rep"
	RoleManager Role = "manager"
	RoleOwner   Role = "owner"
)

// ParseRole accepts rep, manager or owner.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleRep, RoleManager, RoleOwner:
		return r, nil
	}
	return "", invalidf("role %q: want rep, manager or owner", s)
}

// AtLeast reports whether r is as privileged as min.
func (r Role) AtLeast(min Role) bool { return rank(r) >= rank(min) }

func rank(r Role) int {
	switch r {
	case RoleRep:
		return 1
	case RoleManager:
		return 2
	case RoleOwner:
		return 3
	}
	return 0
}

// PrincipalKind says how a principal authenticated.
type PrincipalKind string

// Principal kinds.
const (
	KindUser   PrincipalKind = "user"   // SIP digest or API token of a user
	KindTrunk  PrincipalKind = "trunk"  // a carrier, by source address
	KindAdmin  PrincipalKind = "admin"  // an operator running the CLI on the host
	KindSystem PrincipalKind = "system" // the gateway itself (jobs, sweeps)
)

// Principal is who authenticated, and so which tenant every query runs in.
// Its fields are unexported on purpose: only this package mints principals,
// from rows it read while authenticating, so no code path can build one from
// what a client sent.
type Principal struct {
	tenantID string
	kind     PrincipalKind
	userID   string
	username string
	role     Role
	trunkID  string
}

// TenantID is the tenant every query of this principal is confined to.
func (p Principal) TenantID() string { return p.tenantID }

// Kind says how the principal authenticated.
func (p Principal) Kind() PrincipalKind { return p.kind }

// UserID is set for user principals.
func (p Principal) UserID() string { return p.userID }

// Username is set for user principals.
func (p Principal) Username() string { return p.username }

// Role is the user's role; admins and the system act as owners.
func (p Principal) Role() Role {
	if p.kind == KindAdmin || p.kind == KindSystem {
		return RoleOwner
	}
	return p.role
}

// TrunkID is set for trunk principals.
func (p Principal) TrunkID() string { return p.trunkID }

// Valid reports whether p came from authentication (the zero value did not).
func (p Principal) Valid() bool { return p.tenantID != "" && p.kind != "" }

// Actor names the principal in audit records.
func (p Principal) Actor() string {
	switch p.kind {
	case KindUser:
		return "user:" + p.username
	case KindTrunk:
		return "trunk:" + p.trunkID
	default:
		return string(p.kind)
	}
}

// System returns the gateway's own principal for tenant-scoped background work
// on a row the gateway already holds (a job carries its tenant id from the row
// that created it, never from a client).
func System(tenantID string) Principal {
	return Principal{tenantID: tenantID, kind: KindSystem}
}
