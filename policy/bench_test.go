package policy

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"
)

// BenchmarkDecideOutbound measures a full outbound decision on the embedded
// store (SQLite in a temp dir): parse, static rules, and the one counter
// transaction (suspension, anomaly, concurrency, rate windows, spend, insert,
// commit), with the shipped policy. Each call is finished right after, so
// the Finish transaction is measured too. Target: p99 under 1 ms.
func BenchmarkDecideOutbound(b *testing.B) {
	policy, err := os.ReadFile("../configs/policy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	users := make([]string, 50)
	for i := range users {
		users[i] = fmt.Sprintf("rep%02d", i)
	}
	f := newFixture(b, string(policy), users...)
	ctx := context.Background()
	reqs := make([]OutboundRequest, len(users))
	for i, u := range users {
		reqs[i] = f.req(u, fmt.Sprintf("+1415555%04d", i))
	}
	// Warm the tables so windows hold a realistic history.
	decideLat := make([]time.Duration, 0, b.N)
	finishLat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.clock.Advance(150 * time.Millisecond) // 400 calls a minute across 50 reps: under every limit
		r := reqs[i%len(reqs)]
		r.CallID = fmt.Sprintf("bench-%d", i)
		start := time.Now()
		d, err := f.e.DecideOutbound(ctx, r)
		decideLat = append(decideLat, time.Since(start))
		if err != nil || !d.Allow {
			b.Fatalf("call %d: %+v %v", i, d.Reason, err)
		}
		start = time.Now()
		if err := f.e.Finish(ctx, d.Ticket, Outcome{Answered: true, Talk: 95 * time.Second}); err != nil {
			b.Fatal(err)
		}
		finishLat = append(finishLat, time.Since(start))
	}
	b.StopTimer()
	report := func(name string, lat []time.Duration) {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		q := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) }
		b.ReportMetric(q(0.50), name+"-p50-µs")
		b.ReportMetric(q(0.99), name+"-p99-µs")
	}
	report("decide", decideLat)
	report("finish", finishLat)
}

// BenchmarkStaticRules is the part of a decision that touches no store.
func BenchmarkStaticRules(b *testing.B) {
	snap := mustCompileB(b)
	t := snap.tenant("acme")
	u := t.userOf("rep")
	r := OutboundRequest{Dialled: "+14155550100", CallerID: "+16465550100", UserNumbers: []string{"+16465550100"}, DefaultCountry: "US"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d, err := ParseDestination(r.Dialled, r.DefaultCountry)
		if err != nil {
			b.Fatal(err)
		}
		if reason, _ := u.destinationCheck(d); reason != "" {
			b.Fatal(reason)
		}
		t.presentCallerID(u, r)
		t.consentMode("callee", d.Territory, u.location)
	}
}

func mustCompileB(b *testing.B) *snapshot {
	data, err := os.ReadFile("../configs/policy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	snap, errs := compile("policy.yaml", data)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	return snap
}
