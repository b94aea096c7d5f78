package jobs

import (
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// Exponential returns a backoff of base·2^(attempt-1), capped at limit, of
// which the upper half is random ("equal jitter"): jobs that failed together
// (an object-store outage fails every upload at once) retry spread out
// instead of in a herd, and every wait is at least half the nominal one.
func Exponential(base, limit time.Duration) func(attempt int) time.Duration {
	base = max(base, time.Millisecond)
	limit = max(limit, base)
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < limit; i++ {
			d *= 2
		}
		d = min(d, limit)
		return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
}

var defaultBackoff = Exponential(time.Second, 5*time.Minute)

// DefaultBackoff waits about 1s, 2s, 4s, ... up to 5 minutes before retry
// number attempt (1 for the retry after the first failure), with jitter.
func DefaultBackoff(attempt int) time.Duration { return defaultBackoff(attempt) }

// retryPolicy applies a backoff to River's jobs. A failed attempt is not in
// job.Errors yet when River asks, hence the +1.
type retryPolicy struct {
	backoff func(attempt int) time.Duration
}

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.backoff(len(job.Errors) + 1))
}
