package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustCompile(t *testing.T, src string) *snapshot {
	t.Helper()
	snap, errs := compile("p.yaml", []byte(src))
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return snap
}

func TestParseErrorsLocated(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      string // "line:col: path: message fragment"
	}{
		{"unknown top", "tenant: {}\n", "1:1: tenant: unknown field (known: defaults, tenants, version)"},
		{"unknown nested", "defaults:\n  rate_limits:\n    user:\n      calls_per_mintue: 5\n",
			"4:7: defaults.rate_limits.user.calls_per_mintue: unknown field (known: calls_per_hour, calls_per_minute, concurrent_calls)"},
		{"bad iso", "defaults:\n  countries:\n    allow: [US, XX]\n", "3:17: defaults.countries.allow[1]: \"XX\" is not an ISO 3166-1"},
		{"iso word", "defaults:\n  countries:\n    allow: [USA]\n", "3:13: defaults.countries.allow[0]: \"USA\" is not an ISO"},
		{"zero limit", "defaults:\n  rate_limits:\n    user:\n      calls_per_minute: 0\n",
			"4:25: defaults.rate_limits.user.calls_per_minute: must be at least 1 (leave the field out for no limit), got 0"},
		{"negative limit", "tenants:\n  acme:\n    rate_limits:\n      tenant: {concurrent_calls: -3}\n",
			"4:34: tenants.acme.rate_limits.tenant.concurrent_calls: must be at least 1"},
		{"negative price", "defaults:\n  spend:\n    rates:\n      - {prefix: \"+1\", per_minute: -1}\n",
			"4:36: defaults.spend.rates[0].per_minute: must not be negative, got -1"},
		{"zero cap", "defaults:\n  spend:\n    rates: [{prefix: \"+1\", per_minute: 1}]\n    caps: {daily: 0}\n",
			"4:19: defaults.spend.caps.daily: must be at least 1"},
		{"overlapping rates", "defaults:\n  spend:\n    rates:\n      - {prefix: \"+44\", per_minute: 3}\n      - {prefix: \"+44\", per_minute: 5}\n",
			"5:9: defaults.spend.rates[1]: +44 overlaps line 4 with a different rate"},
		{"duplicate rate", "defaults:\n  spend:\n    rates:\n      - {prefix: \"+44\", per_minute: 3}\n      - {prefix: \"+44\", per_minute: 3}\n",
			"5:9: defaults.spend.rates[1]: +44 is listed twice (line 4)"},
		{"rate missing price", "defaults:\n  spend:\n    rates:\n      - {prefix: \"+44\"}\n",
			"4:9: defaults.spend.rates[0]: a rate needs prefix and per_minute"},
		{"fractional increment", "defaults:\n  spend:\n    rates:\n      - {prefix: \"+44\", per_minute: 3, increment: 1500ms}\n",
			"4:51: defaults.spend.rates[0].increment: bill in whole seconds"},
		{"bad prefix", "defaults:\n  prefixes:\n    block: [\"1900\"]\n", "3:13: defaults.prefixes.block[0]: \"1900\": want '+'"},
		{"block and allow", "defaults:\n  prefixes:\n    block: [\"+44\"]\n    allow: [\"+44\"]\n",
			"4:13: defaults.prefixes.allow[0]: +44 is both blocked and allowed (line 3)"},
		{"caps without rates", "tenants:\n  acme:\n    spend:\n      caps: {daily: 100}\n",
			"3:5: tenants.acme.spend: spend caps need a rate deck"},
		{"user caps without rates", "tenants:\n  acme:\n    users:\n      bob:\n        spend: {caps: {monthly: 5}}\n",
			"5:9: tenants.acme.users.bob: spend caps need a rate deck"},
		{"duplicate key", "defaults:\n  dry_run: true\n  dry_run: false\n", "3:3: defaults.dry_run: defined twice (first at line 2)"},
		{"anchor", "tenants:\n  acme: &d {dry_run: true}\n", "2:3: tenants.acme: YAML anchors, aliases and merge keys are not supported"},
		{"merge key", "tenants:\n  acme:\n    <<: {dry_run: true}\n", "3:5: tenants.acme.<<: YAML anchors, aliases and merge keys are not supported"},
		{"two documents", "defaults: {}\n---\ntenants: {}\n", "2:1: a policy file holds one YAML document"},
		{"syntax", "defaults:\n  countries: [US\n", "p.yaml:1:1: did not find expected ',' or ']'"},
		{"not a mapping", "- a\n- b\n", "1:1: want a mapping of fields, got a list"},
		{"bool word", "defaults:\n  dry_run: yes\n", "2:12: defaults.dry_run: want true or false, got \"yes\""},
		{"int as string", "defaults:\n  rate_limits:\n    user: {calls_per_hour: \"10\"}\n",
			"3:28: defaults.rate_limits.user.calls_per_hour: want a whole number, got \"10\""},
		{"bad duration", "defaults:\n  rate_limits:\n    max_call_duration: forever\n",
			"3:24: defaults.rate_limits.max_call_duration: want a duration such as 90s"},
		{"duration range", "defaults:\n  rate_limits:\n    max_call_duration: 30s\n",
			"3:24: defaults.rate_limits.max_call_duration: must be between 1m0s and 24h0m0s, got 30s"},
		{"bad timezone", "defaults:\n  spend:\n    timezone: Mars/Olympus\n", "3:15: defaults.spend.timezone: \"Mars/Olympus\": want an IANA time zone"},
		{"bad currency", "defaults:\n  spend:\n    currency: dollars\n", "3:15: defaults.spend.currency: \"dollars\": want an ISO 4217"},
		{"bad on_cap", "defaults:\n  spend:\n    on_cap: stop\n", "3:13: defaults.spend.on_cap: \"stop\" is not one of end, finish"},
		{"bad territory", "defaults:\n  consent:\n    announce_dtmf: [US-ZZ]\n", "3:21: defaults.consent.announce_dtmf[0]: \"US-ZZ\": want an ISO 3166-1 country"},
		{"bad location", "tenants:\n  acme:\n    users:\n      al:\n        consent: {location: California}\n",
			"5:29: tenants.acme.users.al.consent.location: \"California\""},
		{"bad mode", "defaults:\n  consent:\n    default: beep\n", "3:14: defaults.consent.default: \"beep\" is not one of announce, announce_dtmf"},
		{"recording off", "defaults:\n  recording:\n    enabled: false\n", "3:5: defaults.recording.enabled: recording is always on"},
		{"emergency", "defaults:\n  emergency:\n    numbers: [911]\n", "2:3: defaults.emergency: emergency numbers (911, 112, 933) always pass and cannot be configured"},
		{"high-risk only", "defaults:\n  number_types:\n    allow: [mobile]\n", "3:13: defaults.number_types.allow[0]: \"mobile\": only the high-risk types"},
		{"caller id", "defaults:\n  caller_id:\n    allow: [\"4155550100\"]\n", "3:13: defaults.caller_id.allow[0]: \"4155550100\": want an E.164 number"},
		{"anomaly missing", "defaults:\n  anomaly:\n    user:\n      attempts: {max: 5}\n", "4:17: defaults.anomaly.user.attempts: window is required"},
		{"percent range", "defaults:\n  anomaly:\n    user:\n      failures: {max_percent: 100, window: 1h}\n",
			"4:31: defaults.anomaly.user.failures.max_percent: must be between 1 and 99, got 100"},
		{"users in defaults", "defaults:\n  users: {}\n", "2:3: defaults.users: unknown field"},
		{"tenant name", "tenants:\n  \"bad name\": {}\n", "2:15: tenants.bad name: tenant name \"bad name\""},
		{"empty value", "defaults:\n  spend:\n    currency:\n", "3:14: defaults.spend.currency: missing value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errs := compile("p.yaml", []byte(c.src))
			if len(errs) == 0 {
				t.Fatalf("no error; want %q", c.want)
			}
			got := errs.Error()
			if len(errs) != 1 {
				t.Fatalf("want exactly one error, got %d:\n%s", len(errs), got)
			}
			if !strings.Contains(got, c.want) {
				t.Fatalf("got:\n%s\nwant a line containing:\n%s", got, c.want)
			}
			if !strings.HasPrefix(got, "p.yaml:") {
				t.Fatalf("error does not start with the file name: %s", got)
			}
		})
	}
}

// Every problem of a file is reported in one run, in file order.
func TestParseReportsEveryError(t *testing.T) {
	src := "defaults:\n  countries: {allow: [XX]}\n  rate_limits: {user: {calls_per_minute: 0}}\nbogus: 1\n"
	_, errs := compile("p.yaml", []byte(src))
	if len(errs) != 3 {
		t.Fatalf("want 3 errors, got %d:\n%v", len(errs), errs)
	}
	for i := 1; i < len(errs); i++ {
		if errs[i].Line < errs[i-1].Line {
			t.Fatalf("errors out of order:\n%v", errs)
		}
	}
}

func TestParseMergesLevels(t *testing.T) {
	snap := mustCompile(t, `
version: v7
defaults:
  countries: {allow: [US]}
  prefixes: {block: ["+1900"], allow: ["+4420"]}
  rate_limits: {user: {calls_per_minute: 5, concurrent_calls: 1}, max_call_duration: 2h}
  caller_id: {allow: ["+14155550001"]}
  consent: {announce_dtmf: [US-CA], location: US-NY}
  spend:
    rates: [{prefix: "+1", per_minute: 2}]
    user_caps: {daily: 100}
tenants:
  acme:
    countries: {allow: [US, CA]}
    prefixes: {allow: ["+1900555"]}
    caller_id: {allow: ["+14155550002"]}
    users:
      bob:
        countries: {allow: [GB]}
        prefixes: {block: ["+4420"]}
        rate_limits: {calls_per_minute: 9}
        caller_id: {allow: ["+14155550003"], on_foreign: refuse}
        consent: {location: us-ca}
        spend: {caps: {daily: 7}}
`)
	if snap.version != "v7" || len(snap.tenants) != 1 || snap.users != 1 {
		t.Fatalf("snapshot %+v", snap)
	}
	acme := snap.tenant("acme")
	other := snap.tenant("unlisted")
	if other != snap.defaults || other.user.countries["CA"] || !other.user.countries["US"] {
		t.Fatalf("unlisted tenant gets defaults: %+v", other.user.countries)
	}
	if !acme.user.countries["CA"] || acme.maxCall != 2*time.Hour || acme.user.perMinute != 5 {
		t.Fatalf("acme: %+v", acme.user)
	}
	// prefixes add up; the longer allow beats the inherited block
	if p, allow, _ := longest(acme.user.prefixes, "19005550100"); p != "1900555" || !allow {
		t.Fatalf("acme prefix %s %v", p, allow)
	}
	if _, allow, _ := longest(acme.user.prefixes, "19001110100"); allow {
		t.Fatal("acme lost the inherited block")
	}
	bob := acme.userOf("bob")
	if bob.countries["US"] || !bob.countries["GB"] || bob.perMinute != 9 || bob.concurrent != 1 || bob.dailyCap != 7 {
		t.Fatalf("bob: %+v", bob)
	}
	if _, allow, ok := longest(bob.prefixes, "442079460000"); !ok || allow {
		t.Fatal("bob's block of an inherited allow must win")
	}
	if _, allow, _ := longest(acme.user.prefixes, "442079460000"); !allow {
		t.Fatal("bob's override leaked into the tenant")
	}
	for _, n := range []string{"+14155550001", "+14155550002", "+14155550003"} {
		if !bob.callerIDs[n] {
			t.Errorf("bob may present %s", n)
		}
	}
	if acme.user.callerIDs["+14155550003"] || other.user.callerIDs["+14155550002"] {
		t.Fatal("caller ID grants leaked upward")
	}
	if bob.onForeign != CallerIDRefuse || acme.user.onForeign != CallerIDCorrect || bob.location != "US-CA" || acme.user.location != "US-NY" {
		t.Fatalf("bob %v %q, acme %v %q", bob.onForeign, bob.location, acme.user.onForeign, acme.user.location)
	}
	if acme.userOf("carol") != &acme.user {
		t.Fatal("unlisted user gets the tenant's rules")
	}
}

func TestBuiltinDefaults(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "version: x\n"} {
		snap := mustCompile(t, src)
		d := snap.tenant("anyone")
		if !d.user.countries["US"] || !d.user.countries["CA"] || len(d.user.countries) != 2 {
			t.Fatalf("%q: countries %v", src, d.user.countries)
		}
		if d.consent.def != ModeAnnounce || d.retentionDays != DefaultRetentionDays || d.maxCall != DefaultMaxCallDuration {
			t.Fatalf("%q: %+v", src, d)
		}
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("version: a\ntenants:\n  acme: {dry_run: true, users: {al: {}, bo: {}}}\n  beta: {}\n"), 0o600)
	sum, errs := Check(good)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if want := fmt.Sprintf("%s: ok, version a, 2 tenants, 2 users, 0 rates, dry run: acme, sha256 ", good); !strings.HasPrefix(sum.String(), want) {
		t.Fatalf("summary %q", sum)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("tenants:\n  acme:\n    dry_run: maybe\n    spend: {on_cap: never}\n"), 0o600)
	if _, errs := Check(bad); len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), bad+":3:14: tenants.acme.dry_run:") {
		t.Fatalf("check bad: %v", errs)
	}
	if _, errs := Check(filepath.Join(dir, "missing.yaml")); len(errs) != 1 {
		t.Fatalf("missing file: %v", errs)
	}
}
