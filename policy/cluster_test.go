package policy

import (
	"context"
	"sync"
	"testing"

	"github.com/blackbox-gw/blackbox/store"
)

// Two nodes, each with its own store handle on one SQLite file, enforce one
// limit: in turn each sees what the other admitted, and a concurrent burst
// across both admits exactly the limit.
func TestTwoEnginesEnforceOneLimit(t *testing.T) {
	f := newFixture(t, `
defaults:
  rate_limits:
    user: {calls_per_minute: 7}
    tenant: {concurrent_calls: 12}
`, "alice", "bob", "carol")
	ctx := context.Background()
	second, err := store.Open(ctx, f.dsn, store.Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	nodes := []*Engine{f.e, f.engine(second)}
	if nodes[0].Node() == nodes[1].Node() {
		t.Fatal("nodes share a name")
	}

	for i, want := range []bool{true, true, true, true, true, true, true, false, false} {
		d := f.decide(nodes[i%2], f.req("carol", "+14155550100"))
		if d.Allow != want {
			t.Fatalf("carol's call %d on node %d: allow=%v %q", i+1, i%2, d.Allow, d.Reason)
		}
		if err := nodes[(i+1)%2].Finish(ctx, d.Ticket, Outcome{}); err != nil { // the other node ends it
			t.Fatal(err)
		}
	}

	decideAll := func(user string, n int) (allowed int, refused map[Reason]int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		refused = map[Reason]int{}
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(e *Engine) {
				defer wg.Done()
				d, err := e.DecideOutbound(ctx, f.req(user, "+14155550100"))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Error(err)
				case d.Allow:
					allowed++
				default:
					refused[d.Reason]++
				}
			}(nodes[i%2])
		}
		wg.Wait()
		return allowed, refused
	}
	allowed, refused := decideAll("alice", 20)
	if allowed != 7 || refused[ReasonRateLimited] != 13 {
		t.Fatalf("alice: %d allowed, refused %v; want 7 and 13 rate_limited", allowed, refused)
	}
	// Alice's 7 calls are still up: bob gets the tenant's 5 remaining slots.
	allowed, refused = decideAll("bob", 20)
	if allowed != 5 || refused[ReasonConcurrentLimit] != 15 {
		t.Fatalf("bob: %d allowed, refused %v; want 5 and 15 concurrent_limit", allowed, refused)
	}
}
