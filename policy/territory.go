package policy

import (
	"sort"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// NANP area codes are mapped to states and provinces from libphonenumber's
// maintained geocoding data (the same data behind "California" or
// "Toronto, ON" answers), so new overlays arrive with a library update. Only
// the names those answers use are listed here, mapped to ISO 3166-2 codes.
var subdivisionNames = map[string][]string{
	"Alabama": {"US-AL"}, "Alaska": {"US-AK"}, "Arizona": {"US-AZ"}, "Arkansas": {"US-AR"},
	"California": {"US-CA"}, "Colorado": {"US-CO"}, "Connecticut": {"US-CT"}, "Delaware": {"US-DE"},
	"Florida": {"US-FL"}, "Georgia": {"US-GA"}, "Hawaii": {"US-HI"}, "Idaho": {"US-ID"},
	"Illinois": {"US-IL"}, "Indiana": {"US-IN"}, "Iowa": {"US-IA"}, "Kansas": {"US-KS"},
	"Kentucky": {"US-KY"}, "Louisiana": {"US-LA"}, "Maine": {"US-ME"}, "Maryland": {"US-MD"},
	"Massachusetts": {"US-MA"}, "Michigan": {"US-MI"}, "Minnesota": {"US-MN"}, "Mississippi": {"US-MS"},
	"Missouri": {"US-MO"}, "Montana": {"US-MT"}, "Nebraska": {"US-NE"}, "Nevada": {"US-NV"},
	"New Hampshire": {"US-NH"}, "New Jersey": {"US-NJ"}, "New Mexico": {"US-NM"}, "New York": {"US-NY"},
	"North Carolina": {"US-NC"}, "North Dakota": {"US-ND"}, "Ohio": {"US-OH"}, "Oklahoma": {"US-OK"},
	"Oregon": {"US-OR"}, "Pennsylvania": {"US-PA"}, "Rhode Island": {"US-RI"}, "South Carolina": {"US-SC"},
	"South Dakota": {"US-SD"}, "Tennessee": {"US-TN"}, "Texas": {"US-TX"}, "Utah": {"US-UT"},
	"Vermont": {"US-VT"}, "Virginia": {"US-VA"}, "Washington": {"US-WA"}, "Washington State": {"US-WA"},
	"West Virginia": {"US-WV"}, "Wisconsin": {"US-WI"}, "Wyoming": {"US-WY"},
	"Washington D.C.": {"US-DC"}, "District of Columbia": {"US-DC"},
	"Alberta": {"CA-AB"}, "British Columbia": {"CA-BC"}, "British Colombia": {"CA-BC"}, "Manitoba": {"CA-MB"},
	"New Brunswick": {"CA-NB"}, "Newfoundland and Labrador": {"CA-NL"}, "Nova Scotia": {"CA-NS"},
	"Ontario": {"CA-ON"}, "Prince Edward Island": {"CA-PE"}, "Quebec": {"CA-QC"}, "Saskatchewan": {"CA-SK"},
	"Northwest Territories": {"CA-NT"}, "Nunavut": {"CA-NU"}, "Yukon": {"CA-YT"},
}

// subdivisions is every ISO 3166-2 code a territory may name in a policy.
var subdivisions = func() map[string]bool {
	out := map[string]bool{}
	for _, codes := range subdivisionNames {
		for _, c := range codes {
			out[c] = true
		}
	}
	return out
}()

// codesFromGeocoding reads one geocoding answer: "City, ST" (USPS or
// Canadian postal abbreviation), a full name, or names joined by "/".
func codesFromGeocoding(g, region string) []string {
	if g == "" {
		return nil
	}
	if i := strings.LastIndex(g, ", "); i >= 0 {
		abbr := g[i+2:]
		if len(abbr) == 2 && (region == "US" || region == "CA") && subdivisions[region+"-"+abbr] {
			return []string{region + "-" + abbr}
		}
		return nil
	}
	var out []string
	for _, name := range strings.Split(g, "/") {
		codes, ok := subdivisionNames[strings.TrimSpace(name)]
		if !ok {
			return nil
		}
		out = append(out, codes...)
	}
	return out
}

var (
	npaOnce  sync.Once
	npaTable map[uint64]string // area code -> "US-CA" or "CA-NS/CA-PE"
)

// warmTerritories builds the area-code table (about 100 ms: it loads the
// geocoding data); NewEngine calls it so no call pays for it.
func warmTerritories() { npaOnce.Do(buildNPATable) }

func geocode(national uint64) string {
	n := &phonenumbers.PhoneNumber{CountryCode: proto.Int32(1), NationalNumber: proto.Uint64(national)}
	g, err := phonenumbers.GetGeocodingForNumber(n, "en")
	if err != nil {
		return ""
	}
	return g
}

func buildNPATable() {
	npaTable = map[uint64]string{}
	for npa := uint64(200); npa <= 999; npa++ {
		region := npaRegion(npa)
		if region != "US" && region != "CA" {
			continue
		}
		codes := codesFromGeocoding(geocode(npa), region)
		if len(codes) == 0 {
			// A few area codes only have exchange-level entries ("Bridgeport,
			// CT"): take the state most of their exchanges name.
			votes := map[string]int{}
			for nxx := uint64(200); nxx <= 999; nxx++ {
				for _, c := range codesFromGeocoding(geocode(npa*1000+nxx), region) {
					votes[c]++
				}
			}
			best := ""
			for c, v := range votes {
				if best == "" || v > votes[best] || (v == votes[best] && c < best) {
					best = c
				}
			}
			if best != "" {
				codes = []string{best}
			}
		}
		if len(codes) > 0 {
			sort.Strings(codes)
			npaTable[npa] = strings.Join(codes, "/")
		}
	}
}

// npaRegion asks libphonenumber which NANP country an area code belongs to,
// with a typical subscriber number behind it.
func npaRegion(npa uint64) string {
	for _, sub := range []uint64{2_345_678, 5_550_100, 2_000_000} {
		n := &phonenumbers.PhoneNumber{CountryCode: proto.Int32(1), NationalNumber: proto.Uint64(npa*10_000_000 + sub)}
		if r := phonenumbers.GetRegionCodeForNumber(n); r != "" {
			return r
		}
	}
	return ""
}

// territoryOf is the consent territory of a parsed number.
func territoryOf(cc int32, national uint64, region string) string {
	if cc == 1 && (region == "US" || region == "CA") && national >= 1_000_000_000 {
		warmTerritories()
		if t, ok := npaTable[national/10_000_000]; ok && strings.HasPrefix(t, region+"-") {
			return t
		}
	}
	return region
}

// splitTerritory lists the codes of a territory ("CA-NS/CA-PE").
func splitTerritory(t string) []string {
	if t == "" {
		return nil
	}
	return strings.Split(t, "/")
}

// validTerritory accepts an ISO 3166-1 country libphonenumber knows or an
// ISO 3166-2 US/CA subdivision.
func validTerritory(t string) bool {
	if len(t) == 2 {
		return phonenumbers.GetSupportedRegions()[t]
	}
	return subdivisions[t]
}
