package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// BenchmarkStore measures the call path's store traffic per backend: a
// scoped read, a call insert and a REGISTER refresh, each one transaction
// (on Postgres: BEGIN, the scope's set_config, the statements, COMMIT).
// Parallel variants run 16 goroutines per core, as many calls would.
func BenchmarkStore(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			h := newHarness(b, backend)
			ctx := context.Background()
			db, err := store.Open(ctx, h.dsn, store.Options{Keyring: h.keys})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			tn, err := db.CreateTenant(ctx, "acme", "US")
			if err != nil {
				b.Fatal(err)
			}
			s := db.In(store.System(tn.ID))
			u, err := s.CreateUser(ctx, store.NewUser{Username: "alice", Role: store.RoleRep, Realm: "bb", Password: "correct horse"})
			if err != nil {
				b.Fatal(err)
			}
			seed := store.Call{ID: store.NewCallID(), UserID: u.ID, Direction: store.Outbound, Caller: "+14155550100", Callee: "+14155550111", ACallID: "x", InviteAt: time.Now()}
			if err := s.InsertCall(ctx, seed); err != nil {
				b.Fatal(err)
			}
			b.Run("Call", func(b *testing.B) {
				defer reportTx(b)
				for b.Loop() {
					if _, err := s.Call(ctx, seed.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("CallParallel", func(b *testing.B) {
				defer reportTx(b)
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := s.Call(ctx, seed.ID); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.Run("InsertCall", func(b *testing.B) {
				defer reportTx(b)
				for b.Loop() {
					c := seed
					c.ID = store.NewCallID()
					if err := s.InsertCall(ctx, c); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("InsertCallParallel", func(b *testing.B) {
				defer reportTx(b)
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						c := seed
						c.ID = store.NewCallID()
						if err := s.InsertCall(ctx, c); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			var cseq atomic.Uint32
			b.Run("Register", func(b *testing.B) {
				defer reportTx(b)
				for b.Loop() {
					_, err := s.Register(ctx, store.Registration{UserID: u.ID, CallID: "reg", CSeq: cseq.Add(1), Source: "10.0.0.1:5060",
						Transport: "udp", Updates: []store.ContactUpdate{{Contact: "sip:alice@10.0.0.1", Expires: time.Hour}}})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// reportTx prints the rate as transactions per second.
func reportTx(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "tx/s")
	}
}
