package wavcheck

import (
	"math"
	"testing"
)

func TestToneShare(t *testing.T) {
	x := Tone(440, 8000, 0, 8000, 0.5)
	if s := ToneShare(x, 8000, 440); s < 0.98 {
		t.Fatalf("pure 440 Hz: share %.3f", s)
	}
	if s := ToneShare(x, 8000, 1000); s > 0.01 {
		t.Fatalf("1 kHz in a 440 Hz tone: share %.3f", s)
	}
	// Half silence halves the share.
	half := append(Tone(440, 8000, 0, 4000, 0.5), make([]int16, 4000)...)
	if s := ToneShare(half, 8000, 440); math.Abs(s-0.5) > 0.03 {
		t.Fatalf("half silent: share %.3f, want ~0.5", s)
	}
	// A phase jump mid-way breaks coherence; blocks do not mind.
	jump := append(Tone(440, 8000, 0, 4000, 0.5), Tone(440, 8000, 4009, 4000, 0.5)...)
	if s := ToneShare(jump, 8000, 440); s > 0.9 {
		t.Fatalf("phase jump not visible: %.3f", s)
	}
	if s := BlockToneShare(jump, 8000, 440, 400); s < 0.95 {
		t.Fatalf("block share with a phase jump: %.3f", s)
	}
	if s := ToneShare(make([]int16, 100), 8000, 440); s != 0 {
		t.Fatalf("silence: %v", s)
	}
	if r := RMS(Tone(1000, 8000, 0, 8000, 1)); math.Abs(r-32767/math.Sqrt2) > 50 {
		t.Fatalf("rms of a full-scale sine: %.1f", r)
	}
}
