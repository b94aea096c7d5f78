package e2e

import (
	"math"
	"time"
)

// goertzel returns |X(f)|² of samples at freq: the power of one frequency,
// without a full FFT. Exact for any freq, not just bin centres.
func goertzel(samples []int16, rate int, freq float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var s1, s2 float64
	for _, x := range samples {
		s := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

// toneFraction is the share of the signal's power that sits at freq:
// about 1 for a pure tone at freq, near 0 when freq is absent, 0 for silence.
// A sine of amplitude A over N samples has |X|² ≈ (AN/2)² and energy A²N/2,
// hence the 2/N scaling.
func toneFraction(samples []int16, rate int, freq float64) float64 {
	var energy float64
	for _, x := range samples {
		energy += float64(x) * float64(x)
	}
	if energy == 0 || len(samples) == 0 {
		return 0
	}
	return 2 * goertzel(samples, rate, freq) / (float64(len(samples)) * energy)
}

// rms is the root-mean-square level of samples (full scale = 32768).
func rms(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, x := range samples {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum / float64(len(samples)))
}

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
