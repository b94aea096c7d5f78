package media

import (
	"math"
	"time"
)

// Ringback returns one cadence of the North American ringback tone
// (440 Hz + 480 Hz, 2 s on, 4 s off), for a caller Blackbox has already
// answered while the rep's phones ring. Play it in a loop until answer.
func Ringback() *Prompt {
	const on, total = 2 * promptRate, 6 * promptRate
	s := make([]int16, total)
	for i := 0; i < on; i++ {
		t := float64(i) / promptRate
		v := 0.5 * (math.Sin(2*math.Pi*440*t) + math.Sin(2*math.Pi*480*t))
		s[i] = int16(v * 0.25 * math.MaxInt16)
	}
	return &Prompt{ID: "ringback", Version: "na", Samples: s, Duration: time.Duration(total) * time.Second / promptRate}
}
