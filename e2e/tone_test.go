package e2e

import (
	"math"
	"time"

	"github.com/blackbox-gw/blackbox/recorder/wavcheck"
)

// The measurements are recorder/wavcheck's, shared with the recorder's own
// tests: toneFraction is wavcheck.ToneShare, rms is wavcheck.RMS.
func toneFraction(samples []int16, rate int, freq float64) float64 {
	return wavcheck.ToneShare(samples, rate, freq)
}

func rms(samples []int16) float64 { return wavcheck.RMS(samples) }

// toneWindow describes one analysis window of toneProfile.
type toneWindow struct {
	Start    time.Duration
	RMS      float64
	Fraction float64 // toneFraction at the profiled frequency
}

// toneProfile cuts samples into windows and measures each: what a recorder
// test needs to say "silence, then the prompt, then 1 kHz" about a channel.
func toneProfile(samples []int16, rate int, freq float64, window time.Duration) []toneWindow {
	n := int(window * time.Duration(rate) / time.Second)
	if n <= 0 {
		return nil
	}
	var out []toneWindow
	for off := 0; off+n <= len(samples); off += n {
		w := samples[off : off+n]
		out = append(out, toneWindow{
			Start:    time.Duration(off) * time.Second / time.Duration(rate),
			RMS:      rms(w),
			Fraction: toneFraction(w, rate, freq),
		})
	}
	return out
}

// sine returns n samples of a sine wave (phase 0) at amplitude amp.
func sine(rate int, freq float64, amp float64, n int) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))))
	}
	return out
}
