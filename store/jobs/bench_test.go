package jobs

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// BenchmarkSIPWritesBesideJobs measures what the SIP path writes on every
// call and registration (a REGISTER, a call row inserted and updated) on
// SQLite, where River shares the store's one writer connection:
//
//   - no-jobs: no job client at all, the baseline;
//   - jobs-idle: a client running with production polling (River's
//     notification poll every 50 ms, fetches every second, leadership);
//   - jobs-busy: the same while 200 jobs a second are enqueued and worked.
//
// It reports latency percentiles per write in microseconds; starvation would
// show as a p99 or max far above the baseline.
func BenchmarkSIPWritesBesideJobs(b *testing.B) {
	for _, mode := range []string{"no-jobs", "jobs-idle", "jobs-busy"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b)
			ctx := context.Background()
			u, err := e.scopeA.CreateUser(ctx, store.NewUser{Username: "alice", Role: store.RoleRep, Realm: "blackbox", Password: "correct-horse-battery"})
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			bg, stopBG := context.WithCancel(ctx)
			if mode != "no-jobs" {
				c, err := New(Options{DB: e.db, Node: "bench", Logger: testLogger()})
				if err != nil {
					b.Fatal(err)
				}
				p := newProbe()
				register(b, c, p)
				wg.Go(func() { c.Run(bg) })
				if mode == "jobs-busy" {
					wg.Go(func() {
						t := time.NewTicker(5 * time.Millisecond)
						defer t.Stop()
						for n := 0; ; n++ {
							select {
							case <-bg.Done():
								return
							case <-t.C:
							}
							if _, _, err := Enqueue(bg, c, e.scopeA, fmt.Sprint("bench-", n), probeArgs{}, EnqueueOptions{}); err != nil && bg.Err() == nil {
								b.Error(err)
								return
							}
						}
					})
				}
				time.Sleep(300 * time.Millisecond) // past River's start-up
			}
			lat := make([]time.Duration, 0, 3*b.N)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if _, err := e.scopeA.Register(ctx, store.Registration{UserID: u.ID, CallID: "reg-" + fmt.Sprint(i), CSeq: 1,
					Source: "192.0.2.10:5060", Transport: "udp", Node: "bench", MaxContacts: 10,
					Updates: []store.ContactUpdate{{Contact: "sip:alice@192.0.2.10:5060", Expires: time.Hour}}}); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				call := store.Call{ID: store.NewCallID(), UserID: u.ID, Direction: store.Outbound, Caller: "+14155550100",
					Callee: "+14155550199", ACallID: fmt.Sprint("a-", i), InviteAt: t1, Node: "bench"}
				if err := e.scopeA.InsertCall(ctx, call); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				call.AnswerAt, call.EndAt, call.EndReason = t2, t2, "bye"
				if err := e.scopeA.UpdateCall(ctx, call); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, t1.Sub(t0), t2.Sub(t1), time.Since(t2))
			}
			b.StopTimer()
			stopBG()
			wg.Wait()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(q(0.5), "p50-µs/write")
			b.ReportMetric(q(0.99), "p99-µs/write")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs/write")
		})
	}
}

// BenchmarkEnqueue measures one unique insert (what Finish adds to a call's
// end), alone and when the identity already exists.
func BenchmarkEnqueue(b *testing.B) {
	e := newEnv(b)
	c, err := New(Options{DB: e.db, Node: "bench", Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	register(b, c, newProbe())
	ctx := context.Background()
	b.Run("new", func(b *testing.B) {
		for i := range b.N {
			if _, _, err := Enqueue(ctx, c, e.scopeA, fmt.Sprint("new-", i), probeArgs{}, EnqueueOptions{Local: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		for range b.N {
			if _, added, err := Enqueue(ctx, c, e.scopeA, "new-0", probeArgs{}, EnqueueOptions{Local: true}); err != nil || added {
				b.Fatal(err, added)
			}
		}
	})
}
