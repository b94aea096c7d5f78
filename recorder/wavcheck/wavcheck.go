// Package wavcheck measures tones in PCM audio, so tests (unit and
// end-to-end) can assert what a recording contains: "the left channel
// carries 440 Hz and not 1 kHz".
package wavcheck

import "math"

// Goertzel returns |X(f)|², the power of the DFT of x at frequency freq
// (any frequency, not only a bin centre).
func Goertzel(x []int16, rate int, freq float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

// ToneShare is the fraction of x's power carried by a sinusoid at freq,
// measured coherently over all of x: about 1 for a pure tone, 0 when the
// tone is absent. Gaps of silence lower it in proportion (half of x silent
// gives about 0.5), and so does a tone whose phase jumps, which is what
// misplaced audio looks like.
func ToneShare(x []int16, rate int, freq float64) float64 {
	var energy float64
	for _, v := range x {
		energy += float64(v) * float64(v)
	}
	if energy == 0 || len(x) == 0 {
		return 0
	}
	return 2 * Goertzel(x, rate, freq) / (float64(len(x)) * energy)
}

// BlockToneShare is ToneShare averaged over blocks of block samples,
// skipping blocks quieter than -50 dBFS, so phase jumps between blocks and
// silent stretches do not count against the tone.
func BlockToneShare(x []int16, rate int, freq float64, block int) float64 {
	if block <= 0 {
		return 0
	}
	var sum float64
	n := 0
	for i := 0; i+block <= len(x); i += block {
		b := x[i : i+block]
		if RMS(b) < 32768*math.Pow(10, -50.0/20) {
			continue
		}
		sum += ToneShare(b, rate, freq)
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// RMS is the root mean square of x, in sample units (full scale 32768).
func RMS(x []int16) float64 {
	if len(x) == 0 {
		return 0
	}
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(len(x)))
}

// Tone synthesises n samples of a sinusoid at freq with amplitude amp (0..1
// of full scale), starting at phase sample offset start.
func Tone(freq float64, rate, start, n int, amp float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(amp * 32767 * math.Sin(2*math.Pi*freq*float64(start+i)/float64(rate)))
	}
	return out
}
