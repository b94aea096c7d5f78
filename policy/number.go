package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrBadNumber means a dialled string is not a phone number.
var ErrBadNumber = errors.New("not a valid phone number")

// NumberType is the libphonenumber classification of a number, in snake case
// (premium_rate, shared_cost, mobile, ...).
type NumberType string

// The number types; the first three are the high-risk ones refused unless a
// policy allows them.
const (
	TypePremiumRate       NumberType = "premium_rate"
	TypeSharedCost        NumberType = "shared_cost"
	TypePersonalNumber    NumberType = "personal_number"
	TypeFixedLine         NumberType = "fixed_line"
	TypeMobile            NumberType = "mobile"
	TypeFixedLineOrMobile NumberType = "fixed_line_or_mobile"
	TypeTollFree          NumberType = "toll_free"
	TypeVoIP              NumberType = "voip"
	TypePager             NumberType = "pager"
	TypeUAN               NumberType = "uan"
	TypeVoicemail         NumberType = "voicemail"
	TypeUnknown           NumberType = "unknown"
	TypeEmergency         NumberType = "emergency"
)

// highRisk are the types toll fraud pays out on: refused unless allowed.
var highRisk = map[NumberType]bool{TypePremiumRate: true, TypeSharedCost: true, TypePersonalNumber: true}

func numberType(t phonenumbers.PhoneNumberType) NumberType {
	switch t {
	case phonenumbers.FIXED_LINE:
		return TypeFixedLine
	case phonenumbers.MOBILE:
		return TypeMobile
	case phonenumbers.FIXED_LINE_OR_MOBILE:
		return TypeFixedLineOrMobile
	case phonenumbers.TOLL_FREE:
		return TypeTollFree
	case phonenumbers.PREMIUM_RATE:
		return TypePremiumRate
	case phonenumbers.SHARED_COST:
		return TypeSharedCost
	case phonenumbers.VOIP:
		return TypeVoIP
	case phonenumbers.PERSONAL_NUMBER:
		return TypePersonalNumber
	case phonenumbers.PAGER:
		return TypePager
	case phonenumbers.UAN:
		return TypeUAN
	case phonenumbers.VOICEMAIL:
		return TypeVoicemail
	}
	return TypeUnknown
}

// Destination is a dialled number after normalisation and classification.
type Destination struct {
	// Dialled is what the rep (or carrier) sent, trimmed.
	Dialled string
	// E164 is the normalised number; for emergency short codes it is the
	// short code itself (911), which carriers expect undecorated.
	E164 string
	// Region is the ISO 3166 code the number belongs to (US vs CA inside +1
	// by area code); "" when unknown.
	Region string
	// Territory is where consent rules are looked up: an ISO 3166-2
	// subdivision inside NANP (US-CA, CA-ON; "CA-NS/CA-PE" where one area
	// code spans several), else the country; "" when unknown.
	Territory string
	// Type is libphonenumber's classification.
	Type NumberType
	// Valid is false for numbers of a plausible length that no numbering
	// plan assigns.
	Valid bool
	// Emergency marks 911/112/933-style numbers of the rep's country.
	Emergency bool
}

// ParseDestination normalises a dialled string (E.164, +…, 00…/011…,
// or national in defaultCountry) with github.com/nyaruka/phonenumbers.
func ParseDestination(raw, defaultCountry string) (Destination, error) {
	d := Destination{Dialled: strings.TrimSpace(raw), Type: TypeUnknown}
	if d.Dialled == "" {
		return d, fmt.Errorf("%w: empty", ErrBadNumber)
	}
	if len(d.Dialled) > 64 {
		return d, fmt.Errorf("%w: %d characters", ErrBadNumber, len(d.Dialled))
	}
	for _, r := range d.Dialled {
		if !strings.ContainsRune("+0123456789-.() ", r) {
			return d, fmt.Errorf("%w: %q has characters other than digits", ErrBadNumber, d.Dialled)
		}
	}
	region := strings.ToUpper(defaultCountry)
	digits := phonenumbers.NormalizeDigitsOnly(d.Dialled)
	if !strings.HasPrefix(d.Dialled, "+") && phonenumbers.ConnectsToEmergencyNumber(digits, region) && phonenumbers.IsEmergencyNumber(digits, region) {
		d.E164, d.Region, d.Territory, d.Emergency, d.Type, d.Valid = digits, region, region, true, TypeEmergency, true
		return d, nil
	}
	if digits == "933" && !strings.HasPrefix(d.Dialled, "+") && region == "US" { // 933 is the US E911 address test line; shortnumber data omits it
		d.E164, d.Region, d.Territory, d.Emergency, d.Type, d.Valid = digits, region, region, true, TypeEmergency, true
		return d, nil
	}
	num, err := phonenumbers.Parse(d.Dialled, region)
	if err != nil {
		return d, fmt.Errorf("%w: %q: %v", ErrBadNumber, d.Dialled, err)
	}
	if !phonenumbers.IsPossibleNumber(num) {
		return d, fmt.Errorf("%w: %q has the wrong length", ErrBadNumber, d.Dialled)
	}
	d.E164 = phonenumbers.Format(num, phonenumbers.E164)
	d.Region = phonenumbers.GetRegionCodeForNumber(num)
	if d.Region == "001" { // non-geographic (satellite, UIFN, ...): no country
		d.Region = ""
	}
	// GetNumberType is UNKNOWN exactly when IsValidNumber is false; one
	// classification instead of two saves a third of the parse time.
	d.Type = numberType(phonenumbers.GetNumberType(num))
	d.Valid = d.Type != TypeUnknown
	d.Territory = territoryOf(num.GetCountryCode(), num.GetNationalNumber(), d.Region)
	return d, nil
}

// NormalizeCallerID turns a presented caller ID (a From or P-Asserted-Identity
// user part, possibly garbage) into E.164, or "" when it is not a number.
func NormalizeCallerID(raw, defaultCountry string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 64 {
		return ""
	}
	for _, r := range raw {
		if !strings.ContainsRune("+0123456789-.() ", r) {
			return ""
		}
	}
	num, err := phonenumbers.Parse(raw, strings.ToUpper(defaultCountry))
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return ""
	}
	return phonenumbers.Format(num, phonenumbers.E164)
}
