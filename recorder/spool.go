package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// A spool file is one recording on local disk while the call runs and until
// its upload succeeds. Layout:
//
//	[0, 1024)     meta block: magic, JSON length, JSON meta, CRC-32C
//	[1024, 1536)  checkpoint slot 0
//	[1536, 2048)  checkpoint slot 1
//	[4096, ...)   PCM data, 16-bit little-endian stereo, interleaved
//
// A checkpoint pairs a byte count of PCM data with the SHA-256 state of
// exactly those bytes, as hashed while they were written. Checkpoint n goes
// to slot n%2 and is made durable with the data by one fsync; the previous
// checkpoint in the other slot was made durable by the previous fsync and
// is never touched by this one. So after a crash (even during an fsync) at
// least one slot describes data that reached the disk, and the final pass
// that builds the object proves which one by re-deriving the hash.
const (
	spoolMagic  = "BBSPOOL1"
	ckptMagic   = "BBCKPT01"
	metaSize    = 1024
	slotSize    = 512
	slotBase    = 1024
	dataStart   = 4096
	spoolSuffix = ".spool"
	tmpSuffix   = ".spool.tmp"
	maxStateLen = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// spoolMeta is what recovery needs to finish a recording with no process
// memory: enough to recreate its row if it was never written.
type spoolMeta struct {
	Version     int       `json:"v"`
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	CallID      string    `json:"call_id"`
	ObjectKey   string    `json:"object_key"`
	Node        string    `json:"node"`
	StartedAtMS int64     `json:"started_at_ms"`
	Channels    [2]string `json:"channels"`
	SampleRate  int       `json:"sample_rate"`
}

// checkpoint is one durable statement "the first Data bytes of PCM hash to
// State".
type checkpoint struct {
	Seq      uint64
	Data     int64
	State    []byte // sha256 digest state (encoding.BinaryMarshaler form)
	SyncedAt time.Time
	Finished bool      // written by Finish: the recording ended normally
	EndedAt  time.Time // set when Finished
}

// encodeCheckpoint lays c into buf (slotSize bytes) without allocating.
func encodeCheckpoint(buf []byte, c checkpoint) error {
	if len(c.State) > maxStateLen {
		return fmt.Errorf("checkpoint: hash state of %d bytes", len(c.State))
	}
	clear(buf[:slotSize])
	copy(buf, ckptMagic)
	binary.LittleEndian.PutUint64(buf[8:], c.Seq)
	binary.LittleEndian.PutUint64(buf[16:], uint64(c.Data))
	binary.LittleEndian.PutUint64(buf[24:], uint64(c.SyncedAt.UnixMilli()))
	var ended int64
	if c.Finished {
		buf[32] = 1
		ended = c.EndedAt.UnixMilli()
	}
	binary.LittleEndian.PutUint64(buf[33:], uint64(ended))
	binary.LittleEndian.PutUint16(buf[41:], uint16(len(c.State)))
	n := 43 + copy(buf[43:], c.State)
	binary.LittleEndian.PutUint32(buf[n:], crc32.Checksum(buf[:n], castagnoli))
	return nil
}

var errBadCheckpoint = errors.New("bad checkpoint")

func decodeCheckpoint(b []byte) (checkpoint, error) {
	if len(b) < slotSize || string(b[:8]) != ckptMagic {
		return checkpoint{}, errBadCheckpoint
	}
	sl := int(binary.LittleEndian.Uint16(b[41:]))
	if sl > maxStateLen {
		return checkpoint{}, errBadCheckpoint
	}
	n := 43 + sl
	if crc32.Checksum(b[:n], castagnoli) != binary.LittleEndian.Uint32(b[n:]) {
		return checkpoint{}, errBadCheckpoint
	}
	c := checkpoint{
		Seq:      binary.LittleEndian.Uint64(b[8:]),
		Data:     int64(binary.LittleEndian.Uint64(b[16:])),
		SyncedAt: time.UnixMilli(int64(binary.LittleEndian.Uint64(b[24:]))),
		Finished: b[32] == 1,
		State:    bytes.Clone(b[43:n]),
	}
	if c.Finished {
		c.EndedAt = time.UnixMilli(int64(binary.LittleEndian.Uint64(b[33:])))
	}
	if c.Data < 0 || c.Data%frameBytes != 0 || c.Data > maxDataBytes {
		return checkpoint{}, errBadCheckpoint
	}
	return c, nil
}

func slotOffset(seq uint64) int64 { return slotBase + int64(seq%2)*slotSize }

func encodeMeta(m spoolMeta) ([]byte, error) {
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(js) > metaSize-16 {
		return nil, fmt.Errorf("spool meta of %d bytes exceeds %d", len(js), metaSize-16)
	}
	buf := make([]byte, dataStart)
	copy(buf, spoolMagic)
	binary.LittleEndian.PutUint32(buf[8:], uint32(len(js)))
	n := 12 + copy(buf[12:], js)
	binary.LittleEndian.PutUint32(buf[n:], crc32.Checksum(buf[:n], castagnoli))
	return buf, nil
}

func decodeMeta(b []byte) (spoolMeta, error) {
	var m spoolMeta
	if len(b) < metaSize || string(b[:8]) != spoolMagic {
		return m, errors.New("no spool signature")
	}
	l := int(binary.LittleEndian.Uint32(b[8:]))
	if l > metaSize-16 {
		return m, errors.New("meta length out of range")
	}
	n := 12 + l
	if crc32.Checksum(b[:n], castagnoli) != binary.LittleEndian.Uint32(b[n:]) {
		return m, errors.New("meta checksum mismatch")
	}
	if err := json.Unmarshal(b[12:n], &m); err != nil {
		return m, fmt.Errorf("meta: %w", err)
	}
	if m.Version != 1 || m.ID == "" || m.TenantID == "" || m.ObjectKey == "" || m.SampleRate != SampleRate {
		return m, fmt.Errorf("meta: unsupported or incomplete (version %d)", m.Version)
	}
	return m, nil
}

// hashState returns the marshalled state of a sha256 digest, appended to buf.
func hashState(h hash.Hash, buf []byte) ([]byte, error) {
	return h.(encoding.BinaryAppender).AppendBinary(buf)
}

// resumeHash rebuilds a sha256 digest from a checkpointed state.
func resumeHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("resume hash: %w", err)
	}
	return h, nil
}

// createSpool writes a new spool's meta block and first (empty) checkpoint
// under a temporary name, syncs it and renames it into place, so a spool
// file either exists whole or not at all.
func createSpool(dir string, m spoolMeta, now time.Time) (*os.File, string, error) {
	final := filepath.Join(dir, m.ID+spoolSuffix)
	tmp := filepath.Join(dir, m.ID+tmpSuffix)
	head, err := encodeMeta(m)
	if err != nil {
		return nil, "", fmt.Errorf("create spool %s: %w", final, err)
	}
	state, _ := hashState(sha256.New(), nil)
	if err := encodeCheckpoint(head[slotBase:], checkpoint{Seq: 0, State: state, SyncedAt: now}); err != nil {
		return nil, "", fmt.Errorf("create spool %s: %w", final, err)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, "", fmt.Errorf("create spool %s: %w", tmp, err)
	}
	fail := func(err error) (*os.File, string, error) {
		f.Close()
		os.Remove(tmp)
		return nil, "", fmt.Errorf("create spool %s: %w", final, err)
	}
	if _, err := f.WriteAt(head, 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		os.Remove(final)
		return nil, "", fmt.Errorf("create spool %s: %w", final, err)
	}
	return f, final, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// spoolInfo is a spool file as found on disk.
type spoolInfo struct {
	path  string
	meta  spoolMeta
	ckpts []checkpoint // valid ones, newest first
	size  int64        // bytes of PCM data present (may exceed any checkpoint)
}

// readSpool reads a spool's meta and checkpoints. It never trusts the data
// region's length: only checkpoints say how much audio is proven.
func readSpool(path string) (*spoolInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, dataStart)
	if n, err := f.ReadAt(head, 0); n < slotBase+2*slotSize {
		return nil, fmt.Errorf("read spool %s: header of %d bytes: %w", path, n, err)
	}
	meta, err := decodeMeta(head)
	if err != nil {
		return nil, fmt.Errorf("read spool %s: %w", path, err)
	}
	info := &spoolInfo{path: path, meta: meta}
	for i := range 2 {
		if c, err := decodeCheckpoint(head[slotBase+i*slotSize:]); err == nil {
			info.ckpts = append(info.ckpts, c)
		}
	}
	if len(info.ckpts) == 0 {
		return nil, fmt.Errorf("read spool %s: no valid checkpoint", path)
	}
	sort.Slice(info.ckpts, func(i, j int) bool { return info.ckpts[i].Seq > info.ckpts[j].Seq })
	if st, err := f.Stat(); err == nil && st.Size() > dataStart {
		info.size = st.Size() - dataStart
	}
	return info, nil
}
