package recorder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func TestWAVHeaderAndReader(t *testing.T) {
	data := make([]byte, 4*8000) // 1 s
	for i := 0; i < len(data); i += 4 {
		binary.LittleEndian.PutUint16(data[i:], uint16(int16(i/4)))
		binary.LittleEndian.PutUint16(data[i+2:], uint16(-int16(i/4)))
	}
	h := wavHeader(int64(len(data)))
	if string(h[0:4]) != "RIFF" || binary.LittleEndian.Uint32(h[4:]) != uint32(36+len(data)) ||
		binary.LittleEndian.Uint32(h[24:]) != 8000 || binary.LittleEndian.Uint32(h[28:]) != 32000 ||
		binary.LittleEndian.Uint16(h[22:]) != 2 || binary.LittleEndian.Uint32(h[40:]) != uint32(len(data)) {
		t.Fatalf("header % x", h)
	}
	file := append(h[:], data...)
	w, err := ReadWAV(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if w.Channels != 2 || w.SampleRate != 8000 || w.Frames() != 8000 || w.Duration() != time.Second || w.DataOffset != 44 {
		t.Fatalf("%+v", w)
	}
	if l, r := w.Channel(0), w.Channel(1); l[100] != 100 || r[100] != -100 {
		t.Fatalf("channels: %d %d", l[100], r[100])
	}

	// Unknown chunks (LIST) before data are skipped.
	var ext bytes.Buffer
	ext.Write(h[:36])
	ext.WriteString("LIST")
	binary.Write(&ext, binary.LittleEndian, uint32(5))
	ext.Write([]byte{1, 2, 3, 4, 5, 0}) // odd size, padded
	ext.Write(h[36:])
	ext.Write(data)
	if w, err := ReadWAV(bytes.NewReader(ext.Bytes())); err != nil || w.Frames() != 8000 || w.DataOffset != 44+14 {
		t.Fatalf("with LIST chunk: %v", err)
	}

	for name, b := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("hello world, not a wav file at all"),
		"truncated": file[:len(file)-10],
		"8-bit":     func() []byte { c := bytes.Clone(file); c[34] = 8; return c }(),
		"no data":   h[:36],
	} {
		if _, err := ReadWAV(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "truncated" && !errors.Is(err, ErrNotWAV) {
			t.Errorf("%s: %v, want ErrNotWAV", name, err)
		}
	}
}
