package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The stored object is a canonical 44-byte-header RIFF/WAVE file: 8 kHz,
// 16-bit little-endian PCM, two channels interleaved (left = channel 0).
const (
	SampleRate    = 8000
	wavHeaderSize = 44
	frameBytes    = 4 // one stereo sample pair
	codecName     = "pcm_s16le"
	// maxDataBytes keeps the RIFF size field (data + 36) within 32 bits:
	// about 37 hours of stereo audio.
	maxDataBytes = (1<<32 - 1 - 36) &^ (frameBytes - 1)
)

// wavHeader returns the header of a stereo 8 kHz 16-bit file with dataLen
// bytes of PCM.
func wavHeader(dataLen int64) [wavHeaderSize]byte {
	var h [wavHeaderSize]byte
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+dataLen))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)                    // fmt chunk size
	binary.LittleEndian.PutUint16(h[20:], 1)                     // PCM
	binary.LittleEndian.PutUint16(h[22:], 2)                     // channels
	binary.LittleEndian.PutUint32(h[24:], SampleRate)            // sample rate
	binary.LittleEndian.PutUint32(h[28:], SampleRate*frameBytes) // byte rate
	binary.LittleEndian.PutUint16(h[32:], frameBytes)            // block align
	binary.LittleEndian.PutUint16(h[34:], 16)                    // bits per sample
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(dataLen))
	return h
}

// WAV is a decoded 16-bit PCM WAV file.
type WAV struct {
	SampleRate int
	Channels   int
	Samples    []int16 // interleaved
	DataOffset int64   // where the PCM data starts in the file
}

// Frames is the number of samples per channel.
func (w *WAV) Frames() int { return len(w.Samples) / w.Channels }

// Duration is the length of the audio.
func (w *WAV) Duration() time.Duration {
	return time.Duration(w.Frames()) * time.Second / time.Duration(w.SampleRate)
}

// Channel returns a copy of one channel's samples.
func (w *WAV) Channel(ch int) []int16 {
	out := make([]int16, 0, w.Frames())
	for i := ch; i < len(w.Samples); i += w.Channels {
		out = append(out, w.Samples[i])
	}
	return out
}

// ErrNotWAV means the input is not a 16-bit PCM RIFF/WAVE file.
var ErrNotWAV = errors.New("not a 16-bit PCM WAV file")

// ReadWAV parses a 16-bit PCM WAV file, skipping chunks it does not need.
// The data chunk's size must match the bytes present: recordings are
// evidence, and a short file is reported, not padded.
func ReadWAV(r io.Reader) (*WAV, error) {
	var riff [12]byte
	if _, err := io.ReadFull(r, riff[:]); err != nil {
		return nil, fmt.Errorf("read wav: %w: %w", ErrNotWAV, err)
	}
	if string(riff[0:4]) != "RIFF" || string(riff[8:12]) != "WAVE" {
		return nil, fmt.Errorf("read wav: %w: no RIFF/WAVE signature", ErrNotWAV)
	}
	w := &WAV{}
	off := int64(12)
	haveFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return nil, fmt.Errorf("read wav: %w: no data chunk: %w", ErrNotWAV, err)
		}
		off += 8
		size := int64(binary.LittleEndian.Uint32(ch[4:]))
		switch string(ch[0:4]) {
		case "fmt ":
			if size < 16 || size > 1024 {
				return nil, fmt.Errorf("read wav: %w: fmt chunk of %d bytes", ErrNotWAV, size)
			}
			f := make([]byte, size+size%2)
			if _, err := io.ReadFull(r, f); err != nil {
				return nil, fmt.Errorf("read wav fmt: %w", err)
			}
			format, chans := binary.LittleEndian.Uint16(f[0:]), binary.LittleEndian.Uint16(f[2:])
			rate, bits := binary.LittleEndian.Uint32(f[4:]), binary.LittleEndian.Uint16(f[14:])
			if format != 1 || bits != 16 || chans == 0 || chans > 8 || rate == 0 || rate > 192000 {
				return nil, fmt.Errorf("read wav: %w: format %d, %d bits, %d channels, %d Hz", ErrNotWAV, format, bits, chans, rate)
			}
			w.Channels, w.SampleRate, haveFmt = int(chans), int(rate), true
			off += int64(len(f))
		case "data":
			if !haveFmt {
				return nil, fmt.Errorf("read wav: %w: data before fmt", ErrNotWAV)
			}
			if size%int64(2*w.Channels) != 0 {
				return nil, fmt.Errorf("read wav: data of %d bytes is not whole frames", size)
			}
			// Read progressively: a lying header must not make us
			// allocate 4 GiB up front.
			buf, err := io.ReadAll(io.LimitReader(r, size))
			if err != nil {
				return nil, fmt.Errorf("read wav data: %w", err)
			}
			if int64(len(buf)) != size {
				return nil, fmt.Errorf("read wav: data chunk claims %d bytes, file has %d", size, len(buf))
			}
			w.Samples = make([]int16, size/2)
			for i := range w.Samples {
				w.Samples[i] = int16(binary.LittleEndian.Uint16(buf[2*i:]))
			}
			w.DataOffset = off
			return w, nil
		default:
			if _, err := io.CopyN(io.Discard, r, size+size%2); err != nil {
				return nil, fmt.Errorf("read wav: chunk %q: %w", ch[0:4], err)
			}
			off += size + size%2
		}
	}
}
