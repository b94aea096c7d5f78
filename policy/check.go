package policy

import (
	"fmt"
	"sort"
	"strings"
)

// Summary describes a valid policy file in one line.
type Summary struct {
	File    string
	Hash    string
	Version string
	Tenants int
	Users   int
	Rates   int
	DryRun  []string // tenants in dry run
}

func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ok", s.File)
	if s.Version != "" {
		fmt.Fprintf(&b, ", version %s", s.Version)
	}
	fmt.Fprintf(&b, ", %d tenants, %d users, %d rates", s.Tenants, s.Users, s.Rates)
	if len(s.DryRun) > 0 {
		fmt.Fprintf(&b, ", dry run: %s", strings.Join(s.DryRun, ","))
	}
	fmt.Fprintf(&b, ", sha256 %s", short(s.Hash))
	return b.String()
}

// Check validates a policy file for `blackbox policy check FILE`: every
// error is an *Error with file:line:column, the field path and what is
// wrong, in file order.
func Check(path string) (Summary, []error) {
	_, data, err := readPolicy(path)
	if err != nil {
		return Summary{}, []error{err}
	}
	snap, errs := compile(path, data)
	if len(errs) > 0 {
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = e
		}
		return Summary{}, out
	}
	return summarize(snap), nil
}

func summarize(s *snapshot) Summary {
	sum := Summary{File: s.file, Hash: s.hash, Version: s.version, Tenants: len(s.tenants), Users: s.users, Rates: s.rates}
	for name, t := range s.tenants {
		if t.dryRun {
			sum.DryRun = append(sum.DryRun, name)
		}
	}
	if s.defaults.dryRun {
		sum.DryRun = append(sum.DryRun, "(defaults)")
	}
	sort.Strings(sum.DryRun)
	return sum
}
