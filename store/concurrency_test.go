package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// TestTwoNodesStoreOneRecording: two nodes (two store handles on one
// database) finishing the same upload at once. Equal evidence: both succeed
// and one audit event records it. Different evidence: exactly one wins and
// the stored hashes are the winner's.
func TestTwoNodesStoreOneRecording(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		db1, sa, _ := tenantsIn(t, h)
		db2 := h.db(t)
		tenant := sa.Principal().TenantID()
		nodes := []*store.Scope{db1.In(store.System(tenant)), db2.In(store.System(tenant))}
		for round := range 10 {
			r, _, err := sa.CreateRecording(ctx, newRecording(fmt.Sprintf("call-%d", round), fmt.Sprintf("key-%d", round)))
			if err != nil {
				t.Fatal(err)
			}
			same := round%2 == 0
			infos := []store.RecordingStoredInfo{
				{SHA256: hashA, AudioSHA256: hashB, EndedAt: time.UnixMilli(1_700_000_100_000)},
				{SHA256: hashA, AudioSHA256: hashB, EndedAt: time.UnixMilli(1_700_000_100_000)},
			}
			if !same {
				infos[1].SHA256 = hashB
			}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = nodes[i].MarkStored(ctx, r.ID, infos[i])
				}()
			}
			wg.Wait()
			got, err := sa.Recording(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != store.RecordingStored || !got.EndedAt.Equal(infos[0].EndedAt) {
				t.Fatalf("round %d: %+v", round, got)
			}
			evs, err := sa.AuditEvents(ctx, store.AuditFilter{Action: "recording.stored", Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			audited := 0
			for _, e := range evs {
				if e.Object == "recording:"+r.ID {
					audited++
				}
			}
			if audited != 1 {
				t.Fatalf("round %d: %d audit events for one stored recording", round, audited)
			}
			if same {
				if errs[0] != nil || errs[1] != nil {
					t.Fatalf("round %d, equal evidence: %v", round, errs)
				}
				continue
			}
			winners := 0
			for i, err := range errs {
				switch {
				case err == nil:
					winners++
					if got.SHA256 != infos[i].SHA256 {
						t.Fatalf("round %d: node %d won but the row holds %s", round, i, got.SHA256)
					}
				case !errors.Is(err, store.ErrConflict):
					t.Fatalf("round %d: node %d: %v", round, i, err)
				}
			}
			if winners != 1 {
				t.Fatalf("round %d, different evidence: %d winners (%v)", round, winners, errs)
			}
		}
	})
}
