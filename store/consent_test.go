package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

func TestConsentEvents(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		_, sa, sb := tenantsIn(t, h)
		t0 := time.UnixMilli(1_700_000_000_000).UTC()
		version := store.PromptVersion("consent-en-v3", strings.Repeat("ab", 32))

		played := store.ConsentEvent{CallID: "call-1", Party: store.PartyCallee, PromptID: "consent-en", PromptVersion: version,
			Mode: store.ConsentAnnounce, Result: store.ConsentPlayed, StartedAt: t0.Add(time.Second), EndedAt: t0.Add(5 * time.Second)}
		accepted := store.ConsentEvent{CallID: "call-1", Party: store.PartyCaller, PromptID: "consent-en", PromptVersion: version,
			Mode: store.ConsentAnnounceDTMF, Result: store.ConsentAccepted, Digit: "1", StartedAt: t0, EndedAt: t0.Add(4 * time.Second)}
		for _, e := range []store.ConsentEvent{played, accepted} {
			if _, err := sa.RecordConsent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		got, err := sa.ConsentEvents(ctx, "call-1")
		if err != nil || len(got) != 2 {
			t.Fatalf("events: %v %v", got, err)
		}
		if got[0].Result != store.ConsentAccepted || got[0].Digit != "1" || got[1].Result != store.ConsentPlayed ||
			!got[1].EndedAt.Equal(played.EndedAt) || got[0].PromptVersion != version || got[0].TenantID == "" {
			t.Fatalf("events in start order with fields: %+v", got)
		}
		if other, err := sb.ConsentEvents(ctx, "call-1"); err != nil || len(other) != 0 {
			t.Fatalf("tenant B sees A's consent: %v %v", other, err)
		}

		bad := func(mut func(e *store.ConsentEvent)) store.ConsentEvent {
			e := accepted
			mut(&e)
			return e
		}
		cases := map[string]store.ConsentEvent{
			"party":          bad(func(e *store.ConsentEvent) { e.Party = "agent" }),
			"mode":           bad(func(e *store.ConsentEvent) { e.Mode = "silent" }),
			"result of mode": bad(func(e *store.ConsentEvent) { e.Mode = store.ConsentAnnounce }),
			"digit missing":  bad(func(e *store.ConsentEvent) { e.Digit = "" }),
			"digit invalid":  bad(func(e *store.ConsentEvent) { e.Digit = "12" }),
			"digit unwanted": bad(func(e *store.ConsentEvent) { e.Result = store.ConsentTimeout }),
			"version":        bad(func(e *store.ConsentEvent) { e.PromptVersion = "consent-en-v3" }),
			"no start":       bad(func(e *store.ConsentEvent) { e.StartedAt = time.Time{} }),
			"ends early":     bad(func(e *store.ConsentEvent) { e.EndedAt = t0.Add(-time.Second) }),
			"no call":        bad(func(e *store.ConsentEvent) { e.CallID = "" }),
		}
		for name, e := range cases {
			if _, err := sa.RecordConsent(ctx, e); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("%s: got %v, want ErrInvalid", name, err)
			}
		}
	})
}
