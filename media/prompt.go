package media

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"
)

// Prompt is audio Blackbox plays into a call: 8 kHz, 16-bit, mono.
type Prompt struct {
	ID, Version string
	// SHA256 is the hex SHA-256 of the file the samples came from, so a
	// recording's metadata can prove which announcement the parties heard.
	SHA256   string
	Samples  []int16
	Duration time.Duration
}

const (
	promptRate = 8000
	// maxPromptBytes bounds what LoadPrompt reads: about 70 minutes of audio.
	maxPromptBytes = 64 << 20
)

// LoadPrompt reads a strict WAV file: RIFF/WAVE with a PCM fmt chunk (format
// 1, one channel, 8000 Hz, 16 bits) and a non-empty data chunk. Anything else
// is rejected with an error wrapping ErrBadPrompt that says what is wrong.
func LoadPrompt(path, id, version string) (*Prompt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open prompt %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPromptBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read prompt %s: %w", path, err)
	}
	if len(b) > maxPromptBytes {
		return nil, fmt.Errorf("prompt %s: %w: larger than %d bytes", path, ErrBadPrompt, maxPromptBytes)
	}
	samples, err := decodeWAV(b)
	if err != nil {
		return nil, fmt.Errorf("prompt %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	return &Prompt{
		ID:       id,
		Version:  version,
		SHA256:   hex.EncodeToString(sum[:]),
		Samples:  samples,
		Duration: time.Duration(len(samples)) * time.Second / promptRate,
	}, nil
}

func badWAV(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadPrompt, fmt.Sprintf(format, args...))
}

// decodeWAV parses a whole WAV file held in b.
func decodeWAV(b []byte) ([]int16, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, badWAV("not a RIFF/WAVE file")
	}
	riffEnd := 8 + int64(binary.LittleEndian.Uint32(b[4:8]))
	if riffEnd > int64(len(b)) {
		return nil, badWAV("RIFF size %d runs past the end of the %d-byte file", riffEnd-8, len(b))
	}
	var haveFmt bool
	for off := int64(12); off+8 <= riffEnd; {
		id := string(b[off : off+4])
		size := int64(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		if body+size > riffEnd {
			return nil, badWAV("chunk %q of %d bytes runs past the end of the file", id, size)
		}
		switch id {
		case "fmt ":
			if err := checkFmt(b[body : body+size]); err != nil {
				return nil, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, badWAV("data chunk before fmt chunk")
			}
			return pcmSamples(b[body : body+size])
		}
		off = body + size + size%2 // chunks are padded to even sizes
	}
	if !haveFmt {
		return nil, badWAV("no fmt chunk")
	}
	return nil, badWAV("no data chunk")
}

func checkFmt(c []byte) error {
	if len(c) < 16 {
		return badWAV("fmt chunk is %d bytes, want at least 16", len(c))
	}
	format := binary.LittleEndian.Uint16(c[0:2])
	channels := binary.LittleEndian.Uint16(c[2:4])
	rate := binary.LittleEndian.Uint32(c[4:8])
	byteRate := binary.LittleEndian.Uint32(c[8:12])
	align := binary.LittleEndian.Uint16(c[12:14])
	bits := binary.LittleEndian.Uint16(c[14:16])
	switch {
	case format != 1:
		return badWAV("audio format %d, want 1 (PCM)", format)
	case channels != 1:
		return badWAV("%d channels, want 1 (mono)", channels)
	case rate != promptRate:
		return badWAV("sample rate %d Hz, want %d", rate, promptRate)
	case bits != 16:
		return badWAV("%d bits per sample, want 16", bits)
	case align != 2 || byteRate != 2*promptRate:
		return badWAV("block align %d / byte rate %d inconsistent with 16-bit mono %d Hz", align, byteRate, promptRate)
	}
	return nil
}

func pcmSamples(d []byte) ([]int16, error) {
	if len(d) == 0 {
		return nil, badWAV("data chunk is empty")
	}
	if len(d)%2 != 0 {
		return nil, badWAV("data chunk has odd length %d", len(d))
	}
	s := make([]int16, len(d)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(d[2*i:]))
	}
	return s, nil
}
