package media

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// wav builds a WAV file; fmt fields and extra chunks are adjustable.
type wav struct {
	format, channels, bits, align uint16
	rate, byteRate                uint32
	data                          []byte
	before                        []byte // raw chunks before fmt
	between                       []byte // raw chunks between fmt and data
	noFmt, noData, dataFirst      bool
	riffDelta                     int
}

func goodWAV(samples ...int16) wav {
	d := make([]byte, 2*len(samples))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(d[2*i:], uint16(s))
	}
	return wav{format: 1, channels: 1, bits: 16, align: 2, rate: 8000, byteRate: 16000, data: d}
}

func chunk(id string, body []byte) []byte {
	b := append([]byte(id), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func (w wav) bytes() []byte {
	f := make([]byte, 16)
	binary.LittleEndian.PutUint16(f[0:], w.format)
	binary.LittleEndian.PutUint16(f[2:], w.channels)
	binary.LittleEndian.PutUint32(f[4:], w.rate)
	binary.LittleEndian.PutUint32(f[8:], w.byteRate)
	binary.LittleEndian.PutUint16(f[12:], w.align)
	binary.LittleEndian.PutUint16(f[14:], w.bits)
	body := []byte("WAVE")
	body = append(body, w.before...)
	if w.dataFirst {
		body = append(body, chunk("data", w.data)...)
	}
	if !w.noFmt {
		body = append(body, chunk("fmt ", f)...)
	}
	body = append(body, w.between...)
	if !w.noData && !w.dataFirst {
		body = append(body, chunk("data", w.data)...)
	}
	out := append([]byte("RIFF"), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(body)+w.riffDelta))
	return append(out, body...)
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "p.wav")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPrompt(t *testing.T) {
	w := goodWAV(1, -2, 32767, -32768, 0, 7, 8, 9)
	w.before = chunk("LIST", []byte("odd")) // odd size, padded
	w.between = chunk("fact", []byte{8, 0, 0, 0})
	b := w.bytes()
	p, err := LoadPrompt(writeTemp(t, b), "consent", "v3")
	if err != nil {
		t.Fatal(err)
	}
	want := []int16{1, -2, 32767, -32768, 0, 7, 8, 9}
	if len(p.Samples) != len(want) {
		t.Fatalf("samples %v", p.Samples)
	}
	for i := range want {
		if p.Samples[i] != want[i] {
			t.Fatalf("sample %d = %d, want %d", i, p.Samples[i], want[i])
		}
	}
	sum := sha256.Sum256(b)
	if p.SHA256 != hex.EncodeToString(sum[:]) || p.ID != "consent" || p.Version != "v3" {
		t.Errorf("prompt meta %+v", p)
	}
	if p.Duration != time.Millisecond {
		t.Errorf("duration %v, want 1ms for 8 samples", p.Duration)
	}
}

func TestLoadPromptRejects(t *testing.T) {
	mod := func(f func(*wav)) []byte {
		w := goodWAV(1, 2, 3, 4)
		f(&w)
		return w.bytes()
	}
	cases := map[string][]byte{
		"empty file":     {},
		"not riff":       []byte("RIFX\x00\x00\x00\x00WAVE"),
		"not wave":       append([]byte("RIFF\x04\x00\x00\x00"), "AVI "...),
		"float":          mod(func(w *wav) { w.format = 3 }),
		"extensible":     mod(func(w *wav) { w.format = 0xfffe }),
		"stereo":         mod(func(w *wav) { w.channels = 2; w.align = 4; w.byteRate = 32000 }),
		"16 kHz":         mod(func(w *wav) { w.rate = 16000; w.byteRate = 32000 }),
		"8 bit":          mod(func(w *wav) { w.bits = 8; w.align = 1; w.byteRate = 8000 }),
		"bad align":      mod(func(w *wav) { w.align = 4 }),
		"no fmt":         mod(func(w *wav) { w.noFmt = true }),
		"no data":        mod(func(w *wav) { w.noData = true }),
		"data first":     mod(func(w *wav) { w.dataFirst = true }),
		"empty data":     mod(func(w *wav) { w.data = nil }),
		"odd data":       mod(func(w *wav) { w.data = []byte{1, 2, 3} }),
		"riff too long":  mod(func(w *wav) { w.riffDelta = 100 }),
		"chunk too long": mod(func(w *wav) { w.between = []byte("junk\xff\xff\x00\x00") }),
		"short fmt":      append([]byte("RIFF\x14\x00\x00\x00WAVEfmt \x08\x00\x00\x00"), make([]byte, 8)...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadPrompt(writeTemp(t, b), "x", "1")
			if !errors.Is(err, ErrBadPrompt) {
				t.Fatalf("err = %v, want ErrBadPrompt", err)
			}
		})
	}
	if _, err := LoadPrompt(filepath.Join(t.TempDir(), "missing.wav"), "x", "1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzDecodeWAV(f *testing.F) {
	f.Add(goodWAV(1, 2, 3).bytes())
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEfmt "))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeWAV(b)
		if err == nil && len(s) == 0 {
			t.Fatal("accepted a prompt with no samples")
		}
	})
}
