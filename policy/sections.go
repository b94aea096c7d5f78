package policy

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // spend periods follow the tenant's zone even on hosts without zoneinfo

	"github.com/nyaruka/phonenumbers"
	"go.yaml.in/yaml/v3"

	"github.com/blackbox-gw/blackbox/store"
)

// countries replaces the allowlist (a user's list is the user's whole list).
func (d *decoder) countries(n *yaml.Node, path string, u *userRules) {
	d.fields(n, path, map[string]field{
		"allow": func(v *yaml.Node, p string) {
			set := map[string]bool{}
			d.list(v, p, func(item *yaml.Node, ip, s string) {
				c := strings.ToUpper(s)
				switch {
				case !phonenumbers.GetSupportedRegions()[c]:
					d.errorf(item, ip, "%q is not an ISO 3166-1 alpha-2 country code with a numbering plan", s)
				case set[c]:
					d.errorf(item, ip, "%s is listed twice", c)
				default:
					set[c] = true
				}
			})
			u.countries = set
		},
	}, nil)
}

// numberTypes replaces the high-risk types allowed.
func (d *decoder) numberTypes(n *yaml.Node, path string, u *userRules) {
	d.fields(n, path, map[string]field{
		"allow": func(v *yaml.Node, p string) {
			set := map[NumberType]bool{}
			d.list(v, p, func(item *yaml.Node, ip, s string) {
				t := NumberType(s)
				switch {
				case !highRisk[t]:
					d.errorf(item, ip, "%q: only the high-risk types are refused and need allowing: premium_rate, shared_cost, personal_number", s)
				case set[t]:
					d.errorf(item, ip, "%s is listed twice", s)
				default:
					set[t] = true
				}
			})
			u.types = set
		},
	}, nil)
}

var prefixRe = regexp.MustCompile(`^\+[0-9]{1,15}$`)

// parsePrefix turns "+1900" into the digits "1900".
func (d *decoder) parsePrefix(item *yaml.Node, path, s string) (string, bool) {
	if !prefixRe.MatchString(s) {
		d.errorf(item, path, "%q: want '+' and the digits of a number's start, such as +1900 or +4420", s)
		return "", false
	}
	return s[1:], true
}

// prefixes add to the rules inherited; a more specific level overrides an
// inherited rule for the very same prefix, and the longest prefix decides.
func (d *decoder) prefixes(n *yaml.Node, path string, u *userRules) {
	local := map[string]*yaml.Node{}
	localAllow := map[string]bool{}
	add := func(allow bool) field {
		return func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, ip, s string) {
				digits, ok := d.parsePrefix(item, ip, s)
				if !ok {
					return
				}
				if prev, dup := local[digits]; dup {
					if localAllow[digits] == allow {
						d.errorf(item, ip, "+%s is listed twice (line %d)", digits, prev.Line)
					} else {
						d.errorf(item, ip, "+%s is both blocked and allowed (line %d)", digits, prev.Line)
					}
					return
				}
				local[digits], localAllow[digits] = item, allow
			})
		}
	}
	d.fields(n, path, map[string]field{"block": add(false), "allow": add(true)}, nil)
	for digits, allow := range localAllow {
		u.prefixes[digits] = allow
	}
}

// callerID sets what happens to a foreign caller ID and adds numbers that
// may be presented beyond the rep's own.
func (d *decoder) callerID(n *yaml.Node, path string, u *userRules) {
	d.fields(n, path, map[string]field{
		"on_foreign": func(v *yaml.Node, p string) {
			if s, ok := d.oneOf(v, p, string(CallerIDCorrect), string(CallerIDRefuse)); ok {
				u.onForeign = CallerIDMode(s)
			}
		},
		"allow": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, ip, s string) {
				if !store.ValidE164(s) {
					d.errorf(item, ip, "%q: want an E.164 number such as +14155550100", s)
					return
				}
				u.callerIDs[s] = true
			})
		},
	}, nil)
}

func (d *decoder) territory(n *yaml.Node, path string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return "", false
	}
	t := strings.ToUpper(s)
	if !validTerritory(t) {
		d.errorf(n, path, "%q: want an ISO 3166-1 country (DE) or a US/CA ISO 3166-2 subdivision (US-CA, CA-QC)", s)
		return "", false
	}
	return t, true
}

func (d *decoder) consent(n *yaml.Node, path string, t *tenantRules) {
	mode := func(dst *ConsentMode) field {
		return func(v *yaml.Node, p string) {
			if s, ok := d.oneOf(v, p, string(ModeAnnounce), string(ModeAnnounceDTMF)); ok {
				*dst = ConsentMode(s)
			}
		}
	}
	d.fields(n, path, map[string]field{
		"default": mode(&t.consent.def),
		"unknown": mode(&t.consent.unknown),
		"announce_dtmf": func(v *yaml.Node, p string) {
			set := map[string]bool{}
			d.list(v, p, func(item *yaml.Node, ip, _ string) {
				if c, ok := d.territory(item, ip); ok {
					if set[c] {
						d.errorf(item, ip, "%s is listed twice", c)
					}
					set[c] = true
				}
			})
			t.consent.dtmf = set
		},
		"location": func(v *yaml.Node, p string) { t.user.location, _ = d.territory(v, p) },
	}, map[string]string{"mode": "recording consent is set per territory: use default, unknown and announce_dtmf"})
}

var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

func (d *decoder) spend(n *yaml.Node, path string, t *tenantRules) {
	sp := &t.spend
	d.fields(n, path, map[string]field{
		"currency": func(v *yaml.Node, p string) {
			if s, ok := d.str(v, p); ok {
				if !currencyRe.MatchString(s) {
					d.errorf(v, p, "%q: want an ISO 4217 code such as USD", s)
					return
				}
				sp.currency = s
			}
		},
		"timezone": func(v *yaml.Node, p string) {
			if s, ok := d.str(v, p); ok {
				loc, err := time.LoadLocation(s)
				if err != nil || s == "Local" {
					d.errorf(v, p, "%q: want an IANA time zone such as America/New_York or UTC", s)
					return
				}
				sp.tz, sp.tzName = loc, s
			}
		},
		"reserve": func(v *yaml.Node, p string) {
			if r, ok := d.duration(v, p, time.Second, 24*time.Hour); ok {
				sp.reserve = r
			}
		},
		"on_cap": func(v *yaml.Node, p string) {
			if s, ok := d.oneOf(v, p, "end", "finish"); ok {
				sp.endOnCap = s == "end"
			}
		},
		"unrated": func(v *yaml.Node, p string) {
			if s, ok := d.oneOf(v, p, "refuse", "allow"); ok {
				sp.refuseUnrated = s == "refuse"
			}
		},
		"rates":     func(v *yaml.Node, p string) { d.rates(v, p, sp) },
		"caps":      func(v *yaml.Node, p string) { d.caps(v, p, &sp.daily, &sp.monthly) },
		"user_caps": func(v *yaml.Node, p string) { d.caps(v, p, &t.user.dailyCap, &t.user.monthlyCap) },
	}, nil)
}

// rates replaces the rate deck. The same prefix twice is an error (with a
// different price it is ambiguous, with the same one a slip); nested
// prefixes are how decks price mobiles apart and the longest one wins.
func (d *decoder) rates(n *yaml.Node, path string, sp *spendRules) {
	if !d.isKind(n, path, yaml.SequenceNode) {
		return
	}
	deck := map[string]rate{}
	lines := map[string]int{}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		r := rate{increment: time.Minute}
		var have struct{ prefix, price bool }
		seconds := func(dst *time.Duration, min time.Duration) field {
			return func(v *yaml.Node, p string) {
				if x, ok := d.duration(v, p, min, time.Hour); ok {
					if x%time.Second != 0 {
						d.errorf(v, p, "bill in whole seconds, got %s", x)
						return
					}
					*dst = x
				}
			}
		}
		d.fields(item, p, map[string]field{
			"prefix": func(v *yaml.Node, p string) {
				have.prefix = true
				if s, ok := d.str(v, p); ok {
					r.prefix, _ = d.parsePrefix(v, p, s)
				}
			},
			"per_minute": func(v *yaml.Node, p string) {
				r.perMinute, _ = d.integer(v, p, 0, 1<<40)
				have.price = true
			},
			"increment": seconds(&r.increment, time.Second),
			"minimum":   seconds(&r.minimum, 0),
		}, nil)
		if item.Kind != yaml.MappingNode {
			continue
		}
		if !have.prefix || !have.price {
			d.errorf(item, p, "a rate needs prefix and per_minute")
			continue
		}
		if prev, dup := deck[r.prefix]; dup {
			if prev.perMinute != r.perMinute || prev.increment != r.increment || prev.minimum != r.minimum {
				d.errorf(item, p, "+%s overlaps line %d with a different rate", r.prefix, lines[r.prefix])
			} else {
				d.errorf(item, p, "+%s is listed twice (line %d)", r.prefix, lines[r.prefix])
			}
			continue
		}
		deck[r.prefix], lines[r.prefix] = r, item.Line
	}
	sp.rates = deck
}

// anomaly replaces each rule it names (attempts, failures, spread) whole.
func (d *decoder) anomaly(n *yaml.Node, path string, t *tenantRules) {
	d.fields(n, path, map[string]field{
		"user":   func(v *yaml.Node, p string) { d.anomalyRule(v, p, &t.anomaly.User) },
		"tenant": func(v *yaml.Node, p string) { d.anomalyRule(v, p, &t.anomaly.Tenant) },
		"prefix_digits": func(v *yaml.Node, p string) {
			if x, ok := d.integer(v, p, 1, 15); ok {
				t.prefixDigits = int(x)
			}
		},
	}, nil)
}

func (d *decoder) anomalyRule(n *yaml.Node, path string, r *store.AnomalyRule) {
	window := func(dst *time.Duration, seen *bool) field {
		return func(v *yaml.Node, p string) {
			*dst, _ = d.duration(v, p, time.Second, maxWindow)
			*seen = true
		}
	}
	required := func(v *yaml.Node, p string, ok bool, what string) {
		if v.Kind == yaml.MappingNode && !ok {
			d.errorf(v, p, "%s is required", what)
		}
	}
	d.fields(n, path, map[string]field{
		"attempts": func(v *yaml.Node, p string) {
			var x store.AnomalyRule
			var hasMax, hasWin bool
			d.fields(v, p, map[string]field{
				"max": func(v *yaml.Node, p string) {
					x.MaxAttempts, _ = d.positiveInt(v, p)
					hasMax = true
				},
				"window": window(&x.AttemptsWindow, &hasWin),
			}, nil)
			required(v, p, hasMax, "max")
			required(v, p, hasWin, "window")
			r.MaxAttempts, r.AttemptsWindow = x.MaxAttempts, x.AttemptsWindow
		},
		"spread": func(v *yaml.Node, p string) {
			var x store.AnomalyRule
			var hasMax, hasWin bool
			d.fields(v, p, map[string]field{
				"max_countries": func(v *yaml.Node, p string) {
					x.MaxCountries, _ = d.positiveInt(v, p)
					hasMax = true
				},
				"max_prefixes": func(v *yaml.Node, p string) {
					x.MaxPrefixes, _ = d.positiveInt(v, p)
					hasMax = true
				},
				"window": window(&x.SpreadWindow, &hasWin),
			}, nil)
			required(v, p, hasMax, "max_countries or max_prefixes")
			required(v, p, hasWin, "window")
			r.MaxCountries, r.MaxPrefixes, r.SpreadWindow = x.MaxCountries, x.MaxPrefixes, x.SpreadWindow
		},
		"failures": func(v *yaml.Node, p string) {
			x := store.AnomalyRule{MinCalls: 10}
			var hasMax, hasWin bool
			d.fields(v, p, map[string]field{
				"max_percent": func(v *yaml.Node, p string) {
					pct, _ := d.integer(v, p, 1, 99)
					x.MaxFailedPercent, hasMax = int(pct), true
				},
				"min_calls": func(v *yaml.Node, p string) { x.MinCalls, _ = d.positiveInt(v, p) },
				"short_call": func(v *yaml.Node, p string) {
					x.ShortCall, _ = d.duration(v, p, 0, time.Hour)
				},
				"window": window(&x.FailuresWindow, &hasWin),
			}, nil)
			required(v, p, hasMax, "max_percent")
			required(v, p, hasWin, "window")
			r.MaxFailedPercent, r.MinCalls, r.ShortCall, r.FailuresWindow = x.MaxFailedPercent, x.MinCalls, x.ShortCall, x.FailuresWindow
		},
	}, nil)
}
