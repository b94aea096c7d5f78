package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

func TestCheckpointEncoding(t *testing.T) {
	state, _ := hashState(sha256.New(), nil)
	c := checkpoint{Seq: 7, Data: 4 * 12345, State: state, SyncedAt: time.UnixMilli(1_700_000_000_123), Finished: true, EndedAt: time.UnixMilli(1_700_000_001_000)}
	buf := make([]byte, slotSize)
	if err := encodeCheckpoint(buf, c); err != nil {
		t.Fatal(err)
	}
	got, err := decodeCheckpoint(buf)
	if err != nil || got.Seq != 7 || got.Data != c.Data || !bytes.Equal(got.State, state) || !got.Finished ||
		!got.EndedAt.Equal(c.EndedAt) || !got.SyncedAt.Equal(c.SyncedAt) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for i := range 60 { // any torn or flipped byte is caught
		bad := bytes.Clone(buf)
		bad[i] ^= 0x40
		if _, err := decodeCheckpoint(bad); err == nil {
			t.Fatalf("flipped byte %d not detected", i)
		}
	}
	if _, err := decodeCheckpoint(make([]byte, slotSize)); err == nil {
		t.Fatal("zero slot accepted")
	}
	odd := c
	odd.Data = 6
	encodeCheckpoint(buf, odd)
	if _, err := decodeCheckpoint(buf); err == nil {
		t.Fatal("data not in whole frames accepted")
	}
	if err := encodeCheckpoint(buf, checkpoint{State: make([]byte, 300)}); err == nil {
		t.Fatal("oversized state accepted")
	}
}

// TestHashResume: the checkpointed hash state, resumed, equals the hash of
// the bytes on disk up to the checkpoint, and continues to the full hash.
func TestHashResume(t *testing.T) {
	r, t0 := bare(t)
	s := r.Stream(Left)
	play(r, s, t0, stream20(60, 3, 0, 0, 0))
	r.flush()
	c, err := r.nextCheckpoint(time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	disk := make([]byte, c.Data)
	if _, err := r.f.ReadAt(disk, dataStart); err != nil {
		t.Fatal(err)
	}
	h, err := resumeHash(c.State)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(disk); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("resumed hash differs from the hash of the spooled bytes")
	}
	play(r, s, t0, stream20(60, 3, 60, 60*160, 1200))
	r.flush()
	more := make([]byte, r.written-c.Data)
	r.f.ReadAt(more, dataStart+c.Data)
	h.Write(more)
	if !bytes.Equal(h.Sum(nil), r.hash.Sum(nil)) {
		t.Fatal("resumed hash does not continue to the running hash")
	}
	if _, err := resumeHash([]byte("garbage")); err == nil {
		t.Fatal("garbage state resumed")
	}
}

// abandon records about 1 s and stops the manager without Finish, leaving
// a spool with several checkpoints.
func abandon(t *testing.T, e *env) (*Recording, *spoolInfo) {
	t.Helper()
	m := e.manager(t, nil)
	stop := run(t, m)
	rec, err := m.Start(context.Background(), Meta{TenantID: e.tenantA, CallID: "fallback"})
	if err != nil {
		t.Fatal(err)
	}
	feed(rec.Stream(Left), newSender(payloadPCMU, 4, 440), 50)
	stop()
	info, err := readSpool(rec.path)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.ckpts) != 2 || info.ckpts[1].Data >= info.ckpts[0].Data || info.ckpts[0].Finished {
		t.Fatalf("checkpoints: %+v", info.ckpts)
	}
	return rec, info
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x55
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveryFallsBackToOlderCheckpoint: a crash during an fsync can leave
// the newest checkpoint on disk without all of its data. The final pass
// notices (the PCM no longer hashes to the checkpoint) and stores the audio
// the previous checkpoint proves.
func TestRecoveryFallsBackToOlderCheckpoint(t *testing.T) {
	e := newEnv(t)
	rec, info := abandon(t, e)
	older := info.ckpts[1]
	flipByte(t, rec.path, dataStart+older.Data+(info.ckpts[0].Data-older.Data)/2)
	m := e.manager(t, nil)
	run(t, m)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 10*time.Second)
	if !row.Truncated || row.Duration != durationOf(older.Data).Truncate(time.Millisecond) || row.SizeBytes != wavHeaderSize+older.Data {
		t.Fatalf("row %+v, want the older checkpoint's %d bytes", row, older.Data)
	}
	raw, _ := readObject(t, e.objs, row.ObjectKey)
	want, _ := resumeHash(older.State)
	if got := sha256.Sum256(raw[wavHeaderSize:]); !bytes.Equal(got[:], want.Sum(nil)) {
		t.Fatal("stored audio is not what the older checkpoint proves")
	}
}

// TestCorruptSpoolNeverUploaded: audio that matches no checkpoint is
// dead-lettered at once, with its spool kept and nothing stored.
func TestCorruptSpoolNeverUploaded(t *testing.T) {
	e := newEnv(t)
	rec, info := abandon(t, e)
	flipByte(t, rec.path, dataStart+info.ckpts[1].Data/2)
	m := e.manager(t, nil)
	run(t, m)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingFailed, 10*time.Second)
	if row.Attempts != 1 || !strings.Contains(row.LastError, "does not match") {
		t.Fatalf("row %+v", row)
	}
	if _, err := e.objs.Stat(context.Background(), row.ObjectKey); err == nil {
		t.Fatal("corrupt audio was stored")
	}
	if _, err := os.Stat(rec.path); err != nil {
		t.Fatalf("corrupt spool must be kept: %v", err)
	}
	if metricValue(m.met.deadLettered) != 1 {
		t.Fatal("dead letter not counted")
	}
}

func TestRecoveryEdgeCases(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	os.MkdirAll(e.spool, 0o750)
	now := time.Now()
	// A spool whose row was never written (crash inside Start).
	orphan := spoolMeta{Version: 1, ID: "0190c0de-0000-7000-8000-00000000000a", TenantID: e.tenantA, CallID: "orphan",
		ObjectKey: "tenants/" + e.tenantA + "/recordings/2026/01/orphan.wav", Node: "n1", StartedAtMS: now.UnixMilli(), SampleRate: SampleRate}
	f, _, err := createSpool(e.spool, orphan, now)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A spool whose recording was stored just before a crash.
	done := orphan
	done.ID, done.CallID, done.ObjectKey = "0190c0de-0000-7000-8000-00000000000b", "done", "tenants/"+e.tenantA+"/recordings/2026/01/done.wav"
	f, donePath, err := createSpool(e.spool, done, now)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	base := store.Recording{Codec: codecName, SampleRate: SampleRate, Node: "n1", StartedAt: now}
	r := base
	r.ID, r.CallID, r.ObjectKey = done.ID, done.CallID, done.ObjectKey
	if _, _, err := e.scopeA.CreateRecording(ctx, r); err != nil {
		t.Fatal(err)
	}
	hx := strings.Repeat("c", 64)
	if err := e.scopeA.MarkStored(ctx, done.ID, store.RecordingStoredInfo{SHA256: hx, AudioSHA256: hx}); err != nil {
		t.Fatal(err)
	}
	// A row of this node whose spool is gone.
	lost := base
	lost.ID, lost.CallID, lost.ObjectKey = "0190c0de-0000-7000-8000-00000000000c", "lost", "k/lost.wav"
	if _, _, err := e.scopeA.CreateRecording(ctx, lost); err != nil {
		t.Fatal(err)
	}
	// Another node's row is not ours to judge.
	other := base
	other.ID, other.CallID, other.ObjectKey, other.Node = "0190c0de-0000-7000-8000-00000000000d", "other", "k/other.wav", "n2"
	if _, _, err := e.scopeA.CreateRecording(ctx, other); err != nil {
		t.Fatal(err)
	}
	// Junk: an unreadable spool is kept, a half-created one removed.
	junk := filepath.Join(e.spool, "junk.spool")
	os.WriteFile(junk, []byte("not a spool"), 0o640)
	half := filepath.Join(e.spool, "x.spool.tmp")
	os.WriteFile(half, []byte("half"), 0o640)

	m := e.manager(t, nil)
	run(t, m)
	row := waitState(t, e.scopeA, orphan.ID, store.RecordingStored, 10*time.Second)
	if !row.Truncated || row.Duration != 0 || row.SizeBytes != wavHeaderSize || row.CallID != "orphan" {
		t.Fatalf("orphan spool row %+v", row)
	}
	if got, _ := e.scopeA.Recording(ctx, done.ID); got.SHA256 != hx || got.Attempts != 1 {
		t.Fatalf("stored recording touched again: %+v", got)
	}
	if _, err := os.Stat(donePath); !os.IsNotExist(err) {
		t.Fatal("spool of a stored recording kept")
	}
	if got := waitState(t, e.scopeA, lost.ID, store.RecordingFailed, 5*time.Second); !strings.Contains(got.LastError, "missing") {
		t.Fatalf("lost spool: %+v", got)
	}
	if got, _ := e.scopeA.Recording(ctx, other.ID); got.State != store.RecordingActive {
		t.Fatalf("another node's recording changed: %s", got.State)
	}
	if _, err := os.Stat(junk); err != nil {
		t.Fatal("unreadable spool deleted")
	}
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Fatal("half-created spool kept")
	}
	if metricValue(m.met.spoolErrors) < 1 {
		t.Fatal("unreadable spool not counted")
	}
	if err := m.Retry(ctx, e.scopeA, other.ID); !errors.Is(err, ErrNotLocal) {
		t.Fatalf("retry of another node's recording: %v", err)
	}
}

// TestFailedSyncKeepsGoodSlot: after a failed checkpoint write the next
// checkpoint reuses the failed slot, never the one holding the last good
// checkpoint, including when a sync cannot be queued.
func TestFailedSyncKeepsGoodSlot(t *testing.T) {
	r, t0 := bare(t)
	s := r.Stream(Left)
	rw := r.f
	step := func(from float64) checkpoint {
		play(r, s, t0, stream20(10, 1, uint16(from/20), uint32(from*8), from))
		r.flush()
		c, err := r.nextCheckpoint(time.Now(), false)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1 := step(0)
	if err := r.writeCheckpoint(slotOffset(c1.Seq)); err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(rw.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	r.f = ro
	c2 := step(200)
	if err := r.writeCheckpoint(slotOffset(c2.Seq)); err == nil {
		t.Fatal("write to a read-only spool succeeded")
	}
	r.f = rw
	r.scheduleSync(time.Now()) // no sync workers: not queued, must not move the sequence
	r.scheduleSync(time.Now())
	c3 := step(400)
	if c3.Seq != c2.Seq || slotOffset(c3.Seq) == slotOffset(c1.Seq) {
		t.Fatalf("sequence after a failed sync: %d (good one %d, failed %d)", c3.Seq, c1.Seq, c2.Seq)
	}
	if err := r.writeCheckpoint(slotOffset(c3.Seq)); err != nil {
		t.Fatal(err)
	}
	slots := make([]byte, 2*slotSize)
	rw.ReadAt(slots, slotBase)
	got := map[uint64]int64{}
	for i := range 2 {
		c, err := decodeCheckpoint(slots[i*slotSize:])
		if err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
		got[c.Seq] = c.Data
	}
	if got[c1.Seq] != c1.Data || got[c3.Seq] != c3.Data {
		t.Fatalf("slots hold %v, want seq %d and %d", got, c1.Seq, c3.Seq)
	}
}
