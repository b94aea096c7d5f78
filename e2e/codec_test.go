package e2e

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/zaf/g711"
)

// frameSamples is one 20 ms G.711 frame at 8 kHz: the ptime every peer here uses.
const (
	frameSamples  = 160
	frameInterval = 20 * time.Millisecond
	sampleRate    = 8000
)

// g711Codec is one of the two codecs Blackbox relays and records.
type g711Codec struct {
	Name        string // SDP encoding name
	PayloadType uint8  // static RTP payload type
	encode      func(int16) uint8
	decode      func(uint8) int16
}

var (
	pcmu = g711Codec{Name: "PCMU", PayloadType: 0, encode: g711.EncodeUlawFrame, decode: g711.DecodeUlawFrame}
	pcma = g711Codec{Name: "PCMA", PayloadType: 8, encode: g711.EncodeAlawFrame, decode: g711.DecodeAlawFrame}
)

// codecByPT finds the codec of a static payload type.
func codecByPT(pt uint8) (g711Codec, error) {
	switch pt {
	case pcmu.PayloadType:
		return pcmu, nil
	case pcma.PayloadType:
		return pcma, nil
	}
	return g711Codec{}, fmt.Errorf("payload type %d is not G.711 (0 or 8)", pt)
}

// Encode turns PCM into one payload per 20 ms frame; a short tail is
// padded with silence so every frame is full.
func (c g711Codec) Encode(pcm []int16) [][]byte {
	var frames [][]byte
	for off := 0; off < len(pcm); off += frameSamples {
		f := make([]byte, frameSamples)
		for i := range f {
			var s int16
			if off+i < len(pcm) {
				s = pcm[off+i]
			}
			f[i] = c.encode(s)
		}
		frames = append(frames, f)
	}
	return frames
}

// Decode turns payloads back into PCM.
func (c g711Codec) Decode(payloads [][]byte) []int16 {
	var pcm []int16
	for _, p := range payloads {
		for _, b := range p {
			pcm = append(pcm, c.decode(b))
		}
	}
	return pcm
}

// noiseFrames returns frames of pseudo-random payload bytes, each frame
// different from every other: the best stream for proving a relay is
// bit-exact, since a tone repeats every few frames.
func noiseFrames(seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	frames := make([][]byte, n)
	for i := range frames {
		f := make([]byte, frameSamples)
		for j := range f {
			f[j] = byte(r.Uint32())
		}
		frames[i] = f
	}
	return frames
}
