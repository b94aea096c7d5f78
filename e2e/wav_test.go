package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
)

// wavAudio is decoded 16-bit PCM: one sample slice per channel.
type wavAudio struct {
	Rate     int
	Channels [][]int16
}

// Duration is the length of the audio.
func (w *wavAudio) Duration() time.Duration {
	if w.Rate == 0 || len(w.Channels) == 0 {
		return 0
	}
	return time.Duration(len(w.Channels[0])) * time.Second / time.Duration(w.Rate)
}

var errNotPCM16 = errors.New("not 16-bit PCM")

// readWAV reads a RIFF/WAVE file of 16-bit PCM (plain or WAVE_FORMAT_EXTENSIBLE),
// skipping chunks it does not need (LIST, fact, ...). Recordings are evidence,
// so anything else is an error rather than a guess.
func readWAV(path string) (*wavAudio, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read wav: %w", err)
	}
	w, err := parseWAV(data)
	if err != nil {
		return nil, fmt.Errorf("wav %s: %w", path, err)
	}
	return w, nil
}

func parseWAV(data []byte) (*wavAudio, error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, errors.New("no RIFF/WAVE header")
	}
	var (
		channels, bits int
		rate           int
		haveFmt        bool
		pcm            []byte
		havePCM        bool
	)
	for p := 12; p+8 <= len(data); {
		id := string(data[p : p+4])
		size := int(binary.LittleEndian.Uint32(data[p+4 : p+8]))
		body := data[p+8:]
		if size > len(body) {
			// A writer killed mid-file leaves a short data chunk; keep what is there.
			if id != "data" {
				return nil, fmt.Errorf("chunk %q: size %d beyond end of file", id, size)
			}
			size = len(body)
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, fmt.Errorf("fmt chunk too short (%d bytes)", size)
			}
			format := binary.LittleEndian.Uint16(body[0:2])
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits = int(binary.LittleEndian.Uint16(body[14:16]))
			const pcmFormat, extensible = 1, 0xFFFE
			if format == extensible && size >= 26 {
				format = binary.LittleEndian.Uint16(body[24:26])
			}
			if format != pcmFormat || bits != 16 {
				return nil, fmt.Errorf("%w: format %d, %d bits", errNotPCM16, format, bits)
			}
			if channels < 1 || rate < 1 {
				return nil, fmt.Errorf("bad fmt: %d channels at %d Hz", channels, rate)
			}
			haveFmt = true
		case "data":
			pcm, havePCM = body, true
		}
		p += 8 + size + size%2 // chunks are word aligned
	}
	if !haveFmt || !havePCM {
		return nil, errors.New("missing fmt or data chunk")
	}
	frames := len(pcm) / (2 * channels)
	w := &wavAudio{Rate: rate, Channels: make([][]int16, channels)}
	for c := range w.Channels {
		w.Channels[c] = make([]int16, frames)
	}
	for i := 0; i < frames; i++ {
		for c := 0; c < channels; c++ {
			off := (i*channels + c) * 2
			w.Channels[c][i] = int16(binary.LittleEndian.Uint16(pcm[off:]))
		}
	}
	return w, nil
}

// encodeWAV writes 16-bit PCM with a plain 44-byte header (what sox writes).
func encodeWAV(w *wavAudio) []byte {
	channels := len(w.Channels)
	frames := 0
	if channels > 0 {
		frames = len(w.Channels[0])
	}
	dataLen := frames * channels * 2
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + dataLen))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(channels))
	le(uint32(w.Rate))
	le(uint32(w.Rate * channels * 2))
	le(uint16(channels * 2))
	le(uint16(16))
	b.WriteString("data")
	le(uint32(dataLen))
	for i := 0; i < frames; i++ {
		for c := 0; c < channels; c++ {
			le(w.Channels[c][i])
		}
	}
	return b.Bytes()
}
