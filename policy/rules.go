package policy

import (
	"maps"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// ConsentMode is how the consent announcement runs for a call.
type ConsentMode string

// Consent modes, from least to most strict.
const (
	// ModeNone plays nothing: emergency calls only.
	ModeNone ConsentMode = "none"
	// ModeAnnounce plays the announcement; staying on the line is consent.
	ModeAnnounce ConsentMode = "announce"
	// ModeAnnounceDTMF plays it and bridges only after the callee presses a
	// key (all-party-consent territories).
	ModeAnnounceDTMF ConsentMode = "announce_dtmf"
)

// CallerIDMode says what happens to a caller ID the rep may not present.
type CallerIDMode string

// Caller ID modes.
const (
	CallerIDCorrect CallerIDMode = "correct" // present the rep's default instead
	CallerIDRefuse  CallerIDMode = "refuse"  // refuse the call
)

// Defaults of the built-in policy, used when no file is configured and as
// the base every file overrides.
const (
	DefaultMaxCallDuration = 4 * time.Hour
	DefaultReserve         = 10 * time.Minute
	DefaultRetentionDays   = 365
	DefaultPrefixDigits    = 4
	maxWindow              = 31 * 24 * time.Hour
)

// userRules is what applies to one rep's calls: the tenant's rules with the
// user's overrides.
type userRules struct {
	countries  map[string]bool
	types      map[NumberType]bool // high-risk types this user may call
	prefixes   map[string]bool     // digits after '+' -> allow (true) or block
	perMinute  int
	perHour    int
	concurrent int
	dailyCap   int64
	monthlyCap int64
	callerIDs  map[string]bool // presentable beyond the rep's own numbers
	onForeign  CallerIDMode
	location   string // ISO territory the rep calls from ("" unknown)
}

func (u userRules) clone() userRules {
	u.countries = maps.Clone(u.countries)
	u.types = maps.Clone(u.types)
	u.prefixes = maps.Clone(u.prefixes)
	u.callerIDs = maps.Clone(u.callerIDs)
	return u
}

// rate is one rate-deck entry; amounts are in the currency's minor units.
type rate struct {
	prefix    string
	perMinute int64
	increment time.Duration
	minimum   time.Duration
}

type spendRules struct {
	currency      string
	tzName        string
	tz            *time.Location
	reserve       time.Duration
	endOnCap      bool // on_cap: end (true) or finish
	refuseUnrated bool
	rates         map[string]rate
	daily         int64 // tenant caps; 0 = none
	monthly       int64
}

type consentRules struct {
	def     ConsentMode
	unknown ConsentMode
	dtmf    map[string]bool
}

// tenantRules is the compiled policy of one tenant.
type tenantRules struct {
	name          string
	dryRun        bool
	user          userRules // every user's rules unless overridden
	users         map[string]*userRules
	concurrent    int
	perSecond     int
	maxCall       time.Duration
	spend         spendRules
	anomaly       store.PolicyAnomaly
	prefixDigits  int // destination prefix length for the spread rule
	retentionDays int
	consent       consentRules
}

func (t *tenantRules) clone() *tenantRules {
	c := *t
	c.user = t.user.clone()
	c.users = map[string]*userRules{}
	c.spend.rates = maps.Clone(t.spend.rates)
	c.consent.dtmf = maps.Clone(t.consent.dtmf)
	return &c
}

func (t *tenantRules) userOf(username string) *userRules {
	if u, ok := t.users[username]; ok {
		return u
	}
	return &t.user
}

// builtin is the policy when no file is configured, and the base a file's
// defaults override: US and CA allowed, high-risk types refused, announce.
func builtin() *tenantRules {
	return &tenantRules{
		user: userRules{
			countries: map[string]bool{"US": true, "CA": true},
			types:     map[NumberType]bool{},
			prefixes:  map[string]bool{},
			callerIDs: map[string]bool{},
			onForeign: CallerIDCorrect,
		},
		users:         map[string]*userRules{},
		maxCall:       DefaultMaxCallDuration,
		spend:         spendRules{tzName: "UTC", tz: time.UTC, reserve: DefaultReserve, endOnCap: true, refuseUnrated: true},
		prefixDigits:  DefaultPrefixDigits,
		retentionDays: DefaultRetentionDays,
		consent:       consentRules{def: ModeAnnounce, unknown: ModeAnnounce, dtmf: map[string]bool{}},
	}
}

// longest finds the longest key of m that prefixes digits.
func longest[V any](m map[string]V, digits string) (string, V, bool) {
	for i := len(digits); i > 0; i-- {
		if v, ok := m[digits[:i]]; ok {
			return digits[:i], v, true
		}
	}
	var zero V
	return "", zero, false
}
