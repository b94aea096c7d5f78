package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrBadNumber means a dialled string is not a phone number.
var ErrBadNumber = errors.New("not a valid phone number")

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
	// Emergency marks 911/112/933-style numbers of the rep's country.
	Emergency bool
}

// ParseDestination normalises a dialled string (E.164, +…, 00…/011…,
// or national in defaultCountry) with github.com/nyaruka/phonenumbers.
func ParseDestination(raw, defaultCountry string) (Destination, error) {
	d := Destination{Dialled: strings.TrimSpace(raw)}
	if d.Dialled == "" {
		return d, fmt.Errorf("%w: empty", ErrBadNumber)
	}
	for _, r := range d.Dialled {
		if !strings.ContainsRune("+0123456789-.() ", r) {
			return d, fmt.Errorf("%w: %q has characters other than digits", ErrBadNumber, d.Dialled)
		}
	}
	region := strings.ToUpper(defaultCountry)
	digits := phonenumbers.NormalizeDigitsOnly(d.Dialled)
	if !strings.HasPrefix(d.Dialled, "+") && phonenumbers.ConnectsToEmergencyNumber(digits, region) && phonenumbers.IsEmergencyNumber(digits, region) {
		d.E164, d.Region, d.Emergency = digits, region, true
		return d, nil
	}
	if d.Dialled == "933" && region == "US" { // 933 is the US E911 address test line; shortnumber data omits it
		d.E164, d.Region, d.Emergency = digits, region, true
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
	return d, nil
}
