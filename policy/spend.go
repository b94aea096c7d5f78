package policy

import (
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// maxBilled bounds the talk time priced, so a nonsense duration reported at
// Finish cannot overflow the arithmetic.
const maxBilled = 10 * 24 * time.Hour

// billed is what a carrier bills for talk: rounded up to the increment and
// at least the minimum; nothing for an unanswered call.
func (r rate) billed(talk time.Duration) time.Duration {
	if talk <= 0 {
		return 0
	}
	talk = min(talk, maxBilled)
	b := (talk + r.increment - 1) / r.increment * r.increment
	return max(b, r.minimum)
}

// cost prices talk in minor units, rounding up.
func (r rate) cost(talk time.Duration) int64 {
	secs := int64(r.billed(talk) / time.Second)
	return (secs*r.perMinute + 59) / 60
}

// covered is the longest talk whose cost stays within amount.
func (r rate) covered(amount int64) time.Duration {
	if r.perMinute == 0 {
		return maxBilled
	}
	if amount <= 0 {
		return 0
	}
	secs := min(amount*60/r.perMinute, int64(maxBilled/time.Second))
	inc := int64(r.increment / time.Second)
	d := time.Duration(secs/inc*inc) * time.Second
	if d < r.minimum {
		return 0
	}
	return d
}

// periods are the spend periods an instant falls in, in the tenant's zone.
func (s spendRules) periods(at time.Time) (day, month time.Time) {
	y, m, d := at.In(s.tz).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, s.tz), time.Date(y, m, 1, 0, 0, 0, 0, s.tz)
}

func (t *tenantRules) spendOf(u *userRules, at time.Time) store.PolicySpend {
	day, month := t.spend.periods(at)
	return store.PolicySpend{Day: day, Month: month,
		TenantDaily: t.spend.daily, TenantMonthly: t.spend.monthly, UserDaily: u.dailyCap, UserMonthly: u.monthlyCap}
}

func (t *tenantRules) capped(u *userRules) bool {
	return t.spend.daily > 0 || t.spend.monthly > 0 || u.dailyCap > 0 || u.monthlyCap > 0
}
