package recorder

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"math"
	"time"
)

const (
	chunkFrames  = 256  // frames mixed per step: bounds the mix buffers
	stagingBytes = 8192 // PCM written to the spool in blocks of up to 256 ms
)

var errSuspended = errors.New("recording suspended by shutdown")

func newHash() hash.Hash { return sha256.New() }

// writeLoop is the one goroutine that moves audio from every active
// recording's streams into its spool, on a ticker.
func (m *Manager) writeLoop(done <-chan struct{}) {
	t := time.NewTicker(m.tick)
	defer t.Stop()
	var batch []*Recording
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		m.mu.Lock()
		for _, r := range m.active {
			batch = append(batch, r)
		}
		m.mu.Unlock()
		now := m.now()
		for _, r := range batch {
			r.pump(now)
		}
		clear(batch)
		batch = batch[:0]
	}
}

// pump writes audio due by now minus the reorder delay, and hands a
// checkpoint to a sync worker every SyncInterval.
func (r *Recording) pump(now time.Time) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.done {
		return
	}
	r.emitTo(r.posAt(now) - int64(r.m.delay)/nsPerSample)
	if now.Sub(r.lastSync) >= r.m.opts.SyncInterval && !r.syncing.Load() {
		r.flush()
		r.scheduleSync(now)
	}
}

// emitTo mixes and stages frames up to position target. If the spool
// cannot take them (write errors), the cursor holds: streams then overflow
// into silence rather than block the relay, and alignment is kept.
func (r *Recording) emitTo(target int64) {
	for r.cursor < target {
		k := int(min(target-r.cursor, chunkFrames))
		if len(r.staging)+k*frameBytes > cap(r.staging) {
			r.flush()
			if len(r.staging)+k*frameBytes > cap(r.staging) {
				return
			}
		}
		r.mixChunk(k)
	}
}

func (r *Recording) mixChunk(k int) {
	left, right := r.acc[Left][:k], r.acc[Right][:k]
	clear(left)
	clear(right)
	r.smu.Lock()
	for _, s := range r.streams {
		s.drain(r.acc[s.ch][:k], r.cursor)
	}
	r.smu.Unlock()
	r.cursor += int64(k)
	r.emitted.Store(r.cursor)
	if r.full || r.written+int64(len(r.staging)+k*frameBytes) > maxDataBytes {
		if !r.full {
			r.m.log.Error("recording reached the WAV size limit; later audio is not kept", "recording", r.id)
		}
		r.full = true
		return
	}
	n := len(r.staging)
	b := r.staging[n : n+k*frameBytes]
	for i := range k {
		binary.LittleEndian.PutUint16(b[4*i:], uint16(clamp16(left[i])))
		binary.LittleEndian.PutUint16(b[4*i+2:], uint16(clamp16(right[i])))
	}
	r.staging = r.staging[:n+k*frameBytes]
}

// clamp16 saturates a mixed sample: streams of a channel are summed in 32
// bits and clipped once, which never wraps.
func clamp16(v int32) int16 {
	return int16(min(max(v, math.MinInt16), math.MaxInt16))
}

// flush writes staged PCM to the spool and hashes exactly the bytes that
// were written, right after writing them.
func (r *Recording) flush() {
	if len(r.staging) == 0 {
		return
	}
	if _, err := r.f.WriteAt(r.staging, dataStart+r.written); err != nil {
		if r.werr == nil {
			r.m.log.Error("spool write failed; audio is held back and silence will fill the gap", "recording", r.id, "err", err)
		}
		r.werr = err
		r.m.met.spoolErrors.Inc()
		return
	}
	if r.werr != nil {
		r.m.log.Info("spool writes work again", "recording", r.id)
		r.werr = nil
	}
	r.hash.Write(r.staging)
	r.written += int64(len(r.staging))
	r.m.met.bytes.Add(float64(len(r.staging)))
	r.staging = r.staging[:0]
}

// nextCheckpoint builds the checkpoint of everything written so far. After
// a failed sync the same slot is reused, so the other slot, whose sync
// succeeded, stays intact.
func (r *Recording) nextCheckpoint(now time.Time, finished bool) (checkpoint, error) {
	if r.syncFailed.Load() {
		r.seq--
	}
	r.seq++
	state, err := hashState(r.hash, r.state[:0])
	if err != nil {
		return checkpoint{}, err
	}
	r.state = state
	c := checkpoint{Seq: r.seq, Data: r.written, State: state, SyncedAt: now, Finished: finished}
	if finished {
		c.EndedAt = r.endedAt
	}
	return c, encodeCheckpoint(r.ckpt[:], c)
}

func (r *Recording) scheduleSync(now time.Time) {
	prev := r.seq
	c, err := r.nextCheckpoint(now, false)
	if err != nil {
		r.m.log.Error("checkpoint", "recording", r.id, "err", err)
		return
	}
	r.ckptOff = slotOffset(c.Seq)
	r.syncing.Store(true)
	r.syncWG.Add(1)
	select {
	case r.m.syncQ <- r:
		r.lastSync = now
	default: // every sync worker is busy: try again next tick
		r.seq = prev
		r.syncing.Store(false)
		r.syncWG.Done()
	}
}

// syncWorker makes checkpoints durable: the checkpoint slot and the data
// before it reach the disk with one fsync.
func (m *Manager) syncWorker() {
	for r := range m.syncQ {
		err := r.writeCheckpoint(r.ckptOff)
		r.syncing.Store(false)
		r.syncWG.Done()
		if err != nil {
			m.log.Error("spool sync failed", "recording", r.id, "err", err)
		}
	}
}

func (r *Recording) writeCheckpoint(off int64) error {
	_, err := r.f.WriteAt(r.ckpt[:], off)
	if err == nil {
		err = r.f.Sync()
	}
	if err != nil {
		r.syncFailed.Store(true)
		r.m.met.spoolErrors.Inc()
		return err
	}
	r.syncFailed.Store(false)
	return nil
}

// finalize writes everything up to end, makes it durable with a finished
// checkpoint and closes the spool. On error nothing is closed, so it can be
// called again.
func (r *Recording) finalize(end int64) (checkpoint, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.done {
		return checkpoint{}, errSuspended
	}
	r.emitTo(end)
	r.flush()
	if r.werr != nil {
		return checkpoint{}, r.werr
	}
	if r.cursor < end && !r.full {
		return checkpoint{}, errors.New("spool did not take the whole recording")
	}
	r.syncWG.Wait()
	c, err := r.nextCheckpoint(r.m.now(), true)
	if err != nil {
		return checkpoint{}, err
	}
	if err := r.writeCheckpoint(slotOffset(c.Seq)); err != nil {
		return checkpoint{}, err
	}
	r.done = true
	if err := r.f.Close(); err != nil {
		r.m.log.Warn("close spool", "recording", r.id, "err", err)
	}
	r.release()
	c.State = append([]byte(nil), c.State...)
	return c, nil
}

// release drops the buffers of a recording that is done, since its owner
// (a call object) may hold it a while longer. wmu is held.
func (r *Recording) release() {
	r.staging = nil
	r.smu.Lock()
	defer r.smu.Unlock()
	for _, s := range r.streams {
		s.mu.Lock()
		s.ring = nil // closed streams never touch it again
		s.mu.Unlock()
	}
}

// suspend is shutdown without Finish: streams stop, what is buffered is
// written and synced with an unfinished checkpoint, and the next Run
// recovers the recording as truncated.
func (r *Recording) suspend() bool {
	for _, s := range r.snapshotStreams() {
		s.close()
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.done {
		return false
	}
	r.done = true
	r.emitTo(r.posAt(r.m.now()))
	r.flush()
	r.syncWG.Wait()
	if c, err := r.nextCheckpoint(r.m.now(), false); err == nil {
		err = r.writeCheckpoint(slotOffset(c.Seq))
		if err != nil {
			r.m.log.Error("final spool sync at shutdown", "recording", r.id, "err", err)
		}
	}
	r.f.Close()
	r.release()
	r.m.log.Warn("recording suspended by shutdown; it is recovered as truncated on the next start", "recording", r.id)
	return true
}
