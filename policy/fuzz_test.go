package policy

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the policy compiler: it must never
// panic, must either compile or explain, and a compiled policy must decide.
// Seeds: testdata/fuzz/FuzzParse (the shipped policies and broken variants).
// Run: go test ./policy -run '^$' -fuzz FuzzParse -fuzztime 60s -fuzzminimizetime 5s
// (minimizing an interesting multi-kilobyte input otherwise takes up to a
// minute, during which the exec counter stands still).
func FuzzParse(f *testing.F) {
	f.Add([]byte("tenants:\n  acme:\n    countries: {allow: [US]}\n"))
	dests := []Destination{}
	for _, n := range []string{"+14155550100", "+19005550100", "+442079460000", "+882123456789"} {
		d, err := ParseDestination(n, "US")
		if err != nil {
			f.Fatal(err)
		}
		dests = append(dests, d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, errs := compile("f.yaml", data)
		if (snap == nil) == (len(errs) == 0) {
			t.Fatalf("compile returned snapshot %v with %d errors", snap != nil, len(errs))
		}
		for _, e := range errs {
			if e.File != "f.yaml" || e.Msg == "" || e.Line < 0 || e.Column < 0 {
				t.Fatalf("malformed error %#v", e)
			}
			if !strings.HasPrefix(e.Error(), "f.yaml") {
				t.Fatalf("error without its file: %q", e.Error())
			}
		}
		if snap == nil {
			return
		}
		again, _ := compile("f.yaml", data)
		if again == nil || again.hash != snap.hash || len(again.tenants) != len(snap.tenants) {
			t.Fatal("compile is not deterministic")
		}
		_ = summarize(snap).String()
		for name, tr := range snap.tenants {
			for _, u := range append([]*userRules{&tr.user}, valuesOf(tr.users)...) {
				for _, d := range dests {
					u.destinationCheck(d)
					tr.consentMode("callee", d.Territory, u.location)
				}
				tr.presentCallerID(u, OutboundRequest{TenantName: name, CallerID: "+14155550100", DefaultCountry: "US"})
			}
			for _, r := range tr.spend.rates {
				if c := r.cost(r.covered(1000)); c > 1000 {
					t.Fatalf("rate %+v: covered(1000) costs %d", r, c)
				}
			}
		}
	})
}

func valuesOf(m map[string]*userRules) []*userRules {
	out := make([]*userRules, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
