package policy

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func TestParseDestination(t *testing.T) {
	for _, c := range []struct {
		dialled, country string
		e164, region     string
		territory        string
		typ              NumberType
		valid, emergency bool
	}{
		{"+14155550100", "US", "+14155550100", "US", "US-CA", TypeFixedLineOrMobile, true, false},
		{"4155550100", "US", "+14155550100", "US", "US-CA", TypeFixedLineOrMobile, true, false},
		{"1 (415) 555-0100", "US", "+14155550100", "US", "US-CA", TypeFixedLineOrMobile, true, false},
		{"+14165550100", "US", "+14165550100", "CA", "CA-ON", TypeFixedLineOrMobile, true, false}, // Toronto: +1 but Canada
		{"6045550100", "US", "+16045550100", "CA", "CA-BC", TypeFixedLineOrMobile, true, false},   // Vancouver
		{"+15145550100", "CA", "+15145550100", "CA", "CA-QC", TypeFixedLineOrMobile, true, false}, // Montreal
		{"+12125550100", "US", "+12125550100", "US", "US-NY", TypeFixedLineOrMobile, true, false},
		{"+12035550100", "US", "+12035550100", "US", "US-CT", TypeFixedLineOrMobile, true, false},       // exchange-level data only
		{"+19055550100", "US", "+19055550100", "CA", "CA-ON", TypeFixedLineOrMobile, true, false},       // exchange-level data only
		{"+19025550100", "US", "+19025550100", "CA", "CA-NS/CA-PE", TypeFixedLineOrMobile, true, false}, // one code, two provinces
		{"+18005550100", "US", "+18005550100", "US", "US", TypeTollFree, true, false},
		{"+19005550100", "US", "+19005550100", "US", "US", TypePremiumRate, true, false},
		{"+18765550100", "US", "+18765550100", "JM", "JM", TypeMobile, true, false}, // Jamaica: +1 but not US/CA
		{"011 44 20 7946 0000", "US", "+442079460000", "GB", "GB", TypeFixedLine, true, false},
		{"+447700900123", "US", "+447700900123", "", "", TypeUnknown, false, false}, // Ofcom drama range: unassigned
		{"+882123456789", "US", "+882123456789", "", "", TypeUnknown, false, false},
		{"911", "US", "911", "US", "US", TypeEmergency, true, true},
		{"112", "US", "112", "US", "US", TypeEmergency, true, true},
		{"933", "US", "933", "US", "US", TypeEmergency, true, true},
		{"112", "DE", "112", "DE", "DE", TypeEmergency, true, true},
		{"+1911", "US", "", "", "", TypeUnknown, false, false}, // not emergency with a '+'
	} {
		d, err := ParseDestination(c.dialled, c.country)
		if c.e164 == "" {
			if !errors.Is(err, ErrBadNumber) {
				t.Errorf("%q: want ErrBadNumber, got %+v %v", c.dialled, d, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.dialled, err)
			continue
		}
		if d.E164 != c.e164 || d.Region != c.region || d.Territory != c.territory || d.Type != c.typ || d.Valid != c.valid || d.Emergency != c.emergency {
			t.Errorf("%q in %s: got %+v", c.dialled, c.country, d)
		}
	}
	for _, bad := range []string{"", "  ", "sip:alice", "12", "+1415555010099999999", "4155550100;ext=1", "\x00"} {
		if _, err := ParseDestination(bad, "US"); !errors.Is(err, ErrBadNumber) {
			t.Errorf("%q: want ErrBadNumber, got %v", bad, err)
		}
	}
}

func TestNormalizeCallerID(t *testing.T) {
	for in, want := range map[string]string{
		"+14155550100":    "+14155550100",
		"4155550100":      "+14155550100",
		"14155550100":     "+14155550100",
		"":                "",
		"anonymous":       "",
		"alice":           "",
		"+1 415 555":      "",
		"<sip:evil@x>":    "",
		"+4420 7946 0000": "+442079460000",
	} {
		if got := NormalizeCallerID(in, "US"); got != want {
			t.Errorf("NormalizeCallerID(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every NANP area code of a US state or Canadian province resolves to one:
// the table comes from maintained data, so a gap would be a silent
// consent-mode downgrade.
func TestAreaCodeTableCoversGeographicCodes(t *testing.T) {
	warmTerritories()
	states := map[string]bool{}
	for _, t := range npaTable {
		for _, c := range splitTerritory(t) {
			states[c] = true
		}
	}
	for _, want := range []string{"US-CA", "US-DE", "US-FL", "US-IL", "US-MD", "US-MA", "US-MT", "US-NV", "US-NH", "US-PA",
		"US-WA", "US-CT", "US-MI", "US-NY", "US-TX", "US-DC", "US-AK", "US-HI", "CA-ON", "CA-QC", "CA-BC", "CA-AB", "CA-NL", "CA-YT"} {
		if !states[want] {
			t.Errorf("no area code maps to %s", want)
		}
	}
	if len(npaTable) < 300 {
		t.Errorf("only %d area codes mapped; geocoding data not read?", len(npaTable))
	}
}

// ParseDestination derives Valid from the number type; hold libphonenumber
// to that equivalence over a spread of real and random numbers.
func TestValidIsKnownType(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		cc := []string{"1", "44", "49", "33", "52", "61", "81", "882", "800", "7"}[i%10]
		raw := "+" + cc
		for n := 0; n < 6+rnd.IntN(7); n++ {
			raw += string(rune('0' + rnd.IntN(10)))
		}
		num, err := phonenumbers.Parse(raw, "US")
		if err != nil {
			continue
		}
		if valid, typed := phonenumbers.IsValidNumber(num), phonenumbers.GetNumberType(num) != phonenumbers.UNKNOWN; valid != typed {
			t.Fatalf("%s: IsValidNumber=%v but type known=%v", raw, valid, typed)
		}
	}
}
