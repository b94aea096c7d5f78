package e2e

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// tonePcap is one generated pcap fixture: the tone WAV (made by sox, see
// testdata/audio/README.md) encoded as 20 ms G.711 RTP.
type tonePcap struct {
	wav, pcap string
	freq      float64
	codec     g711Codec
	ssrc      uint32
}

var tonePcaps = []tonePcap{
	{"tone-440.wav", "tone-440-pcmu.pcap", 440, pcmu, 0x04400000},
	{"tone-440.wav", "tone-440-pcma.pcap", 440, pcma, 0x04400008},
	{"tone-1000.wav", "tone-1000-pcmu.pcap", 1000, pcmu, 0x10000000},
	{"tone-1000.wav", "tone-1000-pcma.pcap", 1000, pcma, 0x10000008},
}

// generate renders the fixture's pcap from its WAV.
func (f tonePcap) generate(t *testing.T) []byte {
	t.Helper()
	w, err := readWAV(repoPath("testdata", "audio", f.wav))
	if err != nil {
		t.Fatal(err)
	}
	data, err := rtpPcap(toneStream(f.codec, f.ssrc, w.Channels[0]))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestAudioFixtures keeps the committed audio honest: formats, durations and
// content are measured, and the pcaps must be exactly what the generator
// makes from the WAVs (go test ./e2e -run TestAudioFixtures -update rewrites them).
func TestAudioFixtures(t *testing.T) {
	t.Run("tones", func(t *testing.T) {
		for _, tc := range []struct {
			file           string
			freq           float64
			minDur, maxDur time.Duration
		}{
			{"tone-440.wav", 440, 3 * time.Second, 5 * time.Second},
			{"tone-1000.wav", 1000, 3 * time.Second, 5 * time.Second},
			{"prompt-beep.wav", 2000, 500 * time.Millisecond, time.Second},
		} {
			w := mustWAV8kMono(t, repoPath("testdata", "audio", tc.file), tc.minDur, tc.maxDur)
			if frac := toneFraction(w.Channels[0], w.Rate, tc.freq); frac < 0.95 {
				t.Errorf("%s: %.0f Hz carries %.2f of the power, want > 0.95", tc.file, tc.freq, frac)
			}
			for _, other := range []float64{440, 1000, 2000} {
				if other == tc.freq {
					continue
				}
				if frac := toneFraction(w.Channels[0], w.Rate, other); frac > 0.01 {
					t.Errorf("%s: %.0f Hz carries %.2f of the power, want < 0.01", tc.file, other, frac)
				}
			}
			if level := rms(w.Channels[0]); level < 5000 {
				t.Errorf("%s: RMS %.0f, want a clearly audible tone (> 5000)", tc.file, level)
			}
		}
	})

	t.Run("consent prompt", func(t *testing.T) {
		w := mustWAV8kMono(t, repoPath("configs", "prompts", "consent-en-v1.wav"), 3*time.Second, 15*time.Second)
		voiced := 0
		for _, win := range toneProfile(w.Channels[0], w.Rate, 440, 100*time.Millisecond) {
			if win.RMS > 1000 {
				voiced++
			}
		}
		// The sentence takes about five seconds to say; a silent or broken
		// file would have few loud windows.
		if voiced < 30 {
			t.Errorf("only %d loud 100 ms windows, want speech for at least 3 s", voiced)
		}
		for _, f := range []float64{440, 1000} {
			if frac := toneFraction(w.Channels[0], w.Rate, f); frac > 0.05 {
				t.Errorf("prompt looks like a %v Hz tone (fraction %.2f), want speech", f, frac)
			}
		}
	})

	t.Run("tone pcaps", func(t *testing.T) {
		for _, f := range tonePcaps {
			path := repoPath("testdata", "audio", f.pcap)
			want := f.generate(t)
			if *flagUpdate {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (regenerate: go test ./e2e -run TestAudioFixtures -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from what the generator makes from %s (regenerate with -update)", f.pcap, f.wav)
			}
			pkts, err := pcapRTP(path)
			if err != nil {
				t.Fatal(err)
			}
			dgrams, err := readPcapUDP(path)
			if err != nil {
				t.Fatal(err)
			}
			var payloads [][]byte
			for i, p := range pkts {
				if p.PayloadType != f.codec.PayloadType || p.SSRC != f.ssrc || p.SequenceNumber != uint16(i+1) || len(p.Payload) != frameSamples {
					t.Fatalf("%s packet %d: pt %d ssrc %#x seq %d len %d", f.pcap, i, p.PayloadType, p.SSRC, p.SequenceNumber, len(p.Payload))
				}
				if at := dgrams[i].At; at != time.Duration(i)*frameInterval {
					t.Fatalf("%s packet %d at %v, want %v", f.pcap, i, at, time.Duration(i)*frameInterval)
				}
				payloads = append(payloads, p.Payload)
			}
			pcm := f.codec.Decode(payloads)
			if frac := toneFraction(pcm, sampleRate, f.freq); frac < 0.95 {
				t.Errorf("%s decodes to %.2f of %v Hz, want > 0.95", f.pcap, frac, f.freq)
			}
		}
	})
}

func mustWAV8kMono(t *testing.T, path string, minDur, maxDur time.Duration) *wavAudio {
	t.Helper()
	w, err := readWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	if w.Rate != sampleRate || len(w.Channels) != 1 {
		t.Fatalf("%s: %d Hz, %d channels; want 8000 Hz mono", path, w.Rate, len(w.Channels))
	}
	if d := w.Duration(); d < minDur || d > maxDur {
		t.Fatalf("%s: %v long, want %v-%v", path, d, minDur, maxDur)
	}
	return w
}
