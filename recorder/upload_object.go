package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// upload is one recording's spool, as an upload attempt needs it.
type upload struct {
	id, tenantID, callID, key, path string
	cands                           []checkpoint // newest first; older ones are fallbacks after a crash
}

func uploadOf(info *spoolInfo) upload {
	return upload{id: info.meta.ID, tenantID: info.meta.TenantID, callID: info.meta.CallID, key: info.meta.ObjectKey,
		path: info.path, cands: info.ckpts}
}

// uploadOnce builds the WAV object from the spool in a single pass that
// streams it to the object store, hashes the object as it goes and re-derives
// the PCM hash; a PCM hash that differs from the ingestion hash fails the
// read at its last byte, so the store publishes nothing. Only then is the
// row marked stored.
func (m *Manager) uploadOnce(ctx context.Context, j upload) error {
	f, err := os.Open(j.path)
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	var mismatch error
	for i, c := range j.cands {
		want, err := resumeHash(c.State)
		if err != nil {
			mismatch = errors.Join(mismatch, fmt.Errorf("%w: checkpoint %d: %w", ErrAudioMismatch, c.Seq, err))
			continue
		}
		wantSum := want.Sum(nil)
		size := objectSize(c)
		sr := newSealReader(io.NewSectionReader(f, dataStart, c.Data), c.Data, wantSum)
		err = m.opts.Objects.Put(ctx, j.key, sr, size, objects.PutOptions{ContentType: "audio/wav"})
		if errors.Is(err, ErrAudioMismatch) {
			m.log.Error("spooled audio does not match its checkpoint; trying an older one", "recording", j.id, "checkpoint", c.Seq, "err", err)
			mismatch = errors.Join(mismatch, err)
			continue
		}
		if err != nil {
			return err
		}
		info, err := m.opts.Objects.Stat(ctx, j.key)
		if err != nil {
			return fmt.Errorf("check stored object: %w", err)
		}
		if info.Size != size {
			return fmt.Errorf("stored object has %d bytes, want %d", info.Size, size)
		}
		ended := c.EndedAt
		if !c.Finished {
			ended = c.SyncedAt
		}
		err = m.opts.DB.In(store.System(j.tenantID)).MarkStored(ctx, j.id, store.RecordingStoredInfo{
			SHA256: hex.EncodeToString(sr.obj.Sum(nil)), AudioSHA256: hex.EncodeToString(wantSum), SizeBytes: size,
			Duration: durationOf(c.Data), Truncated: !c.Finished, EndedAt: ended,
		})
		if err != nil {
			return err
		}
		m.log.Info("recording stored", "recording", j.id, "call", j.callID, "bytes", size, "truncated", !c.Finished, "fallback", i > 0)
		return nil
	}
	return mismatch
}

// sealReader yields header + PCM data while hashing both, and refuses to
// give the last bytes if the PCM does not hash to want.
type sealReader struct {
	header   [wavHeaderSize]byte
	hpos     int
	data     io.Reader
	left     int64
	obj      hash.Hash
	audio    hash.Hash
	want     []byte
	checked  bool
	err      error
	dataSize int64
}

func newSealReader(data io.Reader, n int64, want []byte) *sealReader {
	return &sealReader{header: wavHeader(n), data: data, left: n, dataSize: n, obj: sha256.New(), audio: sha256.New(), want: want}
}

func (s *sealReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	switch {
	case s.hpos < len(s.header):
		n = copy(p, s.header[s.hpos:])
		s.hpos += n
		s.obj.Write(p[:n])
	case s.left > 0:
		q := p[:min(int64(len(p)), s.left)]
		var err error
		n, err = s.data.Read(q)
		s.left -= int64(n)
		s.obj.Write(q[:n])
		s.audio.Write(q[:n])
		if err != nil && err != io.EOF {
			s.err = fmt.Errorf("read spool: %w", err)
			return 0, s.err
		}
		if n == 0 && err == io.EOF {
			s.err = fmt.Errorf("%w: spool holds %d of %d checkpointed bytes", ErrAudioMismatch, s.dataSize-s.left, s.dataSize)
			return 0, s.err
		}
	}
	if s.hpos == len(s.header) && s.left == 0 {
		if !s.checked {
			s.checked = true
			if got := s.audio.Sum(nil); !bytes.Equal(got, s.want) {
				s.err = fmt.Errorf("%w: sha256 %x, ingested %x", ErrAudioMismatch, got, s.want)
				return 0, s.err
			}
		}
		if n == 0 {
			return 0, io.EOF
		}
	}
	return n, nil
}
