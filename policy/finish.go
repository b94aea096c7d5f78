package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// ErrNoSlot means a ticket holds no slot to extend (refused, emergency, or
// already settled or lapsed).
var ErrNoSlot = errors.New("ticket holds no call slot")

// Finish settles an ended call under the policy it was admitted under:
// its slot is released, its reservation replaced by the cost of the billed
// duration, and the failure-share rule fed. Finishing a ticket twice, or one
// without a slot (refused or emergency calls), does nothing.
func (e *Engine) Finish(ctx context.Context, t Ticket, o Outcome) error {
	if t.ID == "" || t.tenant == nil {
		return nil
	}
	at := o.At
	if at.IsZero() {
		at = e.now()
	}
	talk := o.Talk
	if !o.Answered {
		talk = 0
	}
	var cost int64
	if t.rated {
		cost = t.rate.cost(talk)
	}
	res, err := e.counters.PolicySettle(ctx, store.PolicySettlement{
		TenantID: t.TenantID, UserID: t.UserID, Username: t.Username, SlotID: t.ID, At: at,
		Answered: o.Answered, Talk: talk, Cost: cost, DryRun: t.tenant.dryRun, Anomaly: t.tenant.anomaly,
	})
	if err != nil {
		return fmt.Errorf("finish call %s: %w", t.CallID, err)
	}
	if res.Already {
		e.log.Debug("call already settled", "call_id", t.CallID, "slot", t.ID)
	}
	if res.Suspension != nil {
		e.suspended(t.tenant.name, res.Suspension, t.tenant.dryRun)
	}
	return nil
}

// Extend asks for more talk time for a call whose MaxDuration is about to
// elapse because its spend reservation is used up (policy on_cap: end). It
// reserves another estimate, or what the tightest cap still leaves, and
// returns the talk time added; t.MaxDuration and t.Reserved grow to match.
// 0 means the cap is reached: end the call (reason spend_cap).
func (e *Engine) Extend(ctx context.Context, t *Ticket) (time.Duration, error) {
	if t == nil || t.ID == "" || t.tenant == nil {
		return 0, ErrNoSlot
	}
	if !t.rated || t.MaxDuration >= t.tenant.maxCall {
		return 0, nil
	}
	tr := t.tenant
	u := tr.userOf(t.Username)
	want := t.rate.cost(max(tr.spend.reserve, t.rate.minimum))
	got, err := e.counters.PolicyExtend(ctx, store.PolicyExtension{
		TenantID: t.TenantID, UserID: t.UserID, SlotID: t.ID, At: e.now(), Want: want, Spend: tr.spendOf(u, e.now()),
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("extend call %s: %w", t.CallID, ErrNoSlot)
	}
	if err != nil {
		return 0, fmt.Errorf("extend call %s: %w", t.CallID, err)
	}
	t.Reserved += got
	next := min(t.rate.covered(t.Reserved), tr.maxCall)
	added := max(next-t.MaxDuration, 0)
	t.MaxDuration = max(next, t.MaxDuration)
	if added == 0 {
		e.log.Info("spend cap reached during a call; it should end", "tenant", tr.name, "user", t.Username, "call_id", t.CallID)
	}
	return added, nil
}
