package policy

import (
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// snapshot is one compiled policy file. It is immutable once built: a
// reload swaps in a new one and calls keep the one they were admitted under.
type snapshot struct {
	file     string
	hash     string // sha256 of the file bytes, hex
	version  string // the file's own version label
	defaults *tenantRules
	tenants  map[string]*tenantRules
	users    int
	rates    int
}

func (s *snapshot) tenant(name string) *tenantRules {
	if t, ok := s.tenants[name]; ok {
		return t
	}
	return s.defaults
}

// maxKeep is the longest window any rule of the snapshot looks back over.
func (s *snapshot) maxKeep() time.Duration {
	keep := 25 * time.Hour
	all := []*tenantRules{s.defaults}
	for _, t := range s.tenants {
		all = append(all, t)
	}
	for _, t := range all {
		for _, r := range []time.Duration{t.anomaly.User.AttemptsWindow, t.anomaly.User.SpreadWindow, t.anomaly.User.FailuresWindow,
			t.anomaly.Tenant.AttemptsWindow, t.anomaly.Tenant.SpreadWindow, t.anomaly.Tenant.FailuresWindow} {
			keep = max(keep, r+time.Hour)
		}
	}
	return keep
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// compile parses and validates a policy file. Every problem is reported,
// located; a snapshot comes back only when there are none.
func compile(file string, data []byte) (*snapshot, Errors) {
	d := &decoder{file: file}
	snap := &snapshot{file: file, hash: hashOf(data), tenants: map[string]*tenantRules{}}
	root, ok := d.parseYAML(data)
	if !ok {
		return nil, d.sorted()
	}
	snap.defaults = builtin()
	if root == nil {
		return snap, nil
	}
	var defaultsNode, tenantsNode *yaml.Node
	d.fields(root, "", map[string]field{
		"version":  func(v *yaml.Node, p string) { snap.version, _ = d.str(v, p) },
		"defaults": func(v *yaml.Node, _ string) { defaultsNode = v },
		"tenants":  func(v *yaml.Node, _ string) { tenantsNode = v },
	}, nil)
	// Defaults apply first wherever they sit in the file.
	if defaultsNode != nil {
		d.tenant(defaultsNode, "defaults", snap.defaults, false)
		d.checkTenant(defaultsNode, "defaults", snap.defaults)
	}
	if tenantsNode != nil && d.isKind(tenantsNode, "tenants", yaml.MappingNode) {
		d.fields(tenantsNode, "tenants", namedFields(tenantsNode, func(name string) field {
			return func(v *yaml.Node, p string) {
				if !nameRe.MatchString(name) {
					d.errorf(v, p, "tenant name %q: use letters, digits, '.', '_' or '-'", name)
					return
				}
				t := snap.defaults.clone()
				t.name = name
				d.tenant(v, p, t, true)
				d.checkTenant(v, p, t)
				snap.tenants[name] = t
				snap.users += len(t.users)
				snap.rates += len(t.spend.rates)
			}
		}), nil)
	}
	if len(d.errs) > 0 {
		return nil, d.sorted()
	}
	if len(snap.tenants) == 0 {
		snap.rates = len(snap.defaults.spend.rates)
	}
	return snap, nil
}

// namedFields turns every key of a mapping into a known field, for maps keyed
// by free names (tenants, users).
func namedFields(n *yaml.Node, mk func(name string) field) map[string]field {
	out := map[string]field{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		out[name] = mk(name)
	}
	return out
}

var hints = map[string]string{
	"emergency": "emergency numbers (911, 112, 933) always pass and cannot be configured",
}

// tenant applies one tenant's (or the defaults') section onto t.
func (d *decoder) tenant(n *yaml.Node, path string, t *tenantRules, withUsers bool) {
	var usersNode *yaml.Node
	known := map[string]field{
		"dry_run":      func(v *yaml.Node, p string) { t.dryRun, _ = d.boolean(v, p) },
		"countries":    func(v *yaml.Node, p string) { d.countries(v, p, &t.user) },
		"number_types": func(v *yaml.Node, p string) { d.numberTypes(v, p, &t.user) },
		"prefixes":     func(v *yaml.Node, p string) { d.prefixes(v, p, &t.user) },
		"rate_limits":  func(v *yaml.Node, p string) { d.tenantRateLimits(v, p, t) },
		"spend":        func(v *yaml.Node, p string) { d.spend(v, p, t) },
		"anomaly":      func(v *yaml.Node, p string) { d.anomaly(v, p, t) },
		"caller_id":    func(v *yaml.Node, p string) { d.callerID(v, p, &t.user) },
		"recording": func(v *yaml.Node, p string) {
			d.fields(v, p, map[string]field{
				"retention_days": func(v *yaml.Node, p string) {
					if n, ok := d.integer(v, p, 1, 36500); ok {
						t.retentionDays = int(n)
					}
				},
			}, map[string]string{
				"enabled": "recording is always on for inbound and outbound calls and cannot be turned off",
				"mode":    "recording is always on for inbound and outbound calls and cannot be turned off",
			})
		},
		"consent": func(v *yaml.Node, p string) { d.consent(v, p, t) },
	}
	if withUsers {
		known["users"] = func(v *yaml.Node, _ string) { usersNode = v }
	}
	d.fields(n, path, known, hints)
	if usersNode == nil || !d.isKind(usersNode, path+".users", yaml.MappingNode) {
		return
	}
	// Users inherit the tenant's rules whatever order the keys came in.
	d.fields(usersNode, path+".users", namedFields(usersNode, func(name string) field {
		return func(v *yaml.Node, p string) {
			if !nameRe.MatchString(name) {
				d.errorf(v, p, "username %q: use letters, digits, '.', '_', '+' or '-'", name)
				return
			}
			u := t.user.clone()
			d.user(v, p, &u)
			if u.dailyCap > 0 || u.monthlyCap > 0 {
				if len(t.spend.rates) == 0 {
					d.errorf(v, p, "spend caps need a rate deck (spend.rates) to price calls against")
				}
			}
			t.users[name] = &u
		}
	}), nil)
}

// user applies one user's overrides.
func (d *decoder) user(n *yaml.Node, path string, u *userRules) {
	d.fields(n, path, map[string]field{
		"countries":    func(v *yaml.Node, p string) { d.countries(v, p, u) },
		"number_types": func(v *yaml.Node, p string) { d.numberTypes(v, p, u) },
		"prefixes":     func(v *yaml.Node, p string) { d.prefixes(v, p, u) },
		"rate_limits":  func(v *yaml.Node, p string) { d.userRateLimits(v, p, u) },
		"spend": func(v *yaml.Node, p string) {
			d.fields(v, p, map[string]field{
				"caps": func(v *yaml.Node, p string) { d.caps(v, p, &u.dailyCap, &u.monthlyCap) },
			}, nil)
		},
		"caller_id": func(v *yaml.Node, p string) { d.callerID(v, p, u) },
		"consent": func(v *yaml.Node, p string) {
			d.fields(v, p, map[string]field{
				"location": func(v *yaml.Node, p string) { u.location, _ = d.territory(v, p) },
			}, nil)
		},
	}, hints)
}

// checkTenant validates what spans sections, once a tenant is complete.
func (d *decoder) checkTenant(n *yaml.Node, path string, t *tenantRules) {
	capped := t.spend.daily > 0 || t.spend.monthly > 0 || t.user.dailyCap > 0 || t.user.monthlyCap > 0
	if capped && len(t.spend.rates) == 0 {
		d.errorf(n, path+".spend", "spend caps need a rate deck (spend.rates) to price calls against")
	}
}

func (d *decoder) tenantRateLimits(n *yaml.Node, path string, t *tenantRules) {
	d.fields(n, path, map[string]field{
		"user": func(v *yaml.Node, p string) { d.userRateLimits(v, p, &t.user) },
		"tenant": func(v *yaml.Node, p string) {
			d.fields(v, p, map[string]field{
				"calls_per_second": func(v *yaml.Node, p string) { t.perSecond, _ = d.positiveInt(v, p) },
				"concurrent_calls": func(v *yaml.Node, p string) { t.concurrent, _ = d.positiveInt(v, p) },
			}, nil)
		},
		"max_call_duration": func(v *yaml.Node, p string) {
			if v, ok := d.duration(v, p, time.Minute, 24*time.Hour); ok {
				t.maxCall = v
			}
		},
	}, nil)
}

func (d *decoder) userRateLimits(n *yaml.Node, path string, u *userRules) {
	d.fields(n, path, map[string]field{
		"calls_per_minute": func(v *yaml.Node, p string) { u.perMinute, _ = d.positiveInt(v, p) },
		"calls_per_hour":   func(v *yaml.Node, p string) { u.perHour, _ = d.positiveInt(v, p) },
		"concurrent_calls": func(v *yaml.Node, p string) { u.concurrent, _ = d.positiveInt(v, p) },
	}, nil)
}

func (d *decoder) caps(n *yaml.Node, path string, daily, monthly *int64) {
	d.fields(n, path, map[string]field{
		"daily":   func(v *yaml.Node, p string) { *daily, _ = d.integer(v, p, 1, 1<<53) },
		"monthly": func(v *yaml.Node, p string) { *monthly, _ = d.integer(v, p, 1, 1<<53) },
	}, nil)
}
