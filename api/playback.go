package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// playProxy streams a recording to a token holder.
func (s *Server) playProxy(q *req) error {
	rec, err := q.visibleRecording(q.r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.serveAudio(q, q.sc, rec, store.Access{UserID: q.p.UserID(), Username: q.p.Username(), Path: store.AccessProxy})
}

// serveAudio streams a stored recording from the object store through
// Blackbox, with Range support, never redirecting to storage. Every GET is
// logged before a byte of audio leaves: if the access log cannot be
// written, nothing is played.
func (s *Server) serveAudio(q *req, sc *store.Scope, rec store.Recording, a store.Access) error {
	ctx := q.r.Context()
	if rec.State != store.RecordingStored {
		return errorf(http.StatusConflict, "not_stored", "recording is %s; it plays once stored", rec.State)
	}
	if pending, err := sc.DeletionPending(ctx, rec.ID); err != nil {
		return err
	} else if pending {
		return errNotFound
	}
	info, err := s.opts.Objects.Stat(ctx, rec.ObjectKey)
	if errors.Is(err, objects.ErrNotFound) {
		s.log.Error("stored recording has no object", "recording", rec.ID, "tenant", rec.TenantID)
		return errorf(http.StatusNotFound, "audio_missing", "the recording's audio is missing from storage")
	}
	if err != nil {
		return storageError{err}
	}
	if rec.SizeBytes > 0 && info.Size != rec.SizeBytes {
		s.log.Error("stored recording changed size", "recording", rec.ID, "tenant", rec.TenantID, "want", rec.SizeBytes, "have", info.Size)
	}

	var entry store.AccessEntry
	if q.r.Method == http.MethodGet {
		a.RecordingID, a.CallID = rec.ID, rec.CallID
		a.RemoteAddr, a.UserAgent = s.clientAddr(q.r), truncate(q.r.UserAgent(), 256)
		var fresh bool
		entry, fresh, err = sc.LogAccess(ctx, a, s.opts.SessionIdle)
		if err != nil {
			return fmt.Errorf("playback refused, access log unavailable: %w", err)
		}
		if fresh {
			s.met.playbacks.WithLabelValues(string(a.Path)).Inc()
		}
	}

	h := q.w.Header()
	h.Set("Content-Type", "audio/wav")
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", `inline; filename="recording-`+rec.ID+`.wav"`)
	if sum, err := hex.DecodeString(rec.SHA256); err == nil && len(sum) == 32 {
		// A strong validator: the object's hash names its exact bytes.
		h.Set("ETag", `"`+rec.SHA256+`"`)
		h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	}
	body := &objectReader{ctx: ctx, objs: s.opts.Objects, key: rec.ObjectKey, size: info.Size}
	defer body.Close()
	cw := &statusWriter{ResponseWriter: &jsonErrors{ResponseWriter: q.w}}
	http.ServeContent(cw, q.r, "", time.Time{}, body)
	if body.err != nil && !errors.Is(body.err, context.Canceled) {
		s.log.Warn("playback cut short by the object store", "recording", rec.ID, "tenant", rec.TenantID, "error", body.err)
	}
	if entry.ID != "" && cw.bytes > 0 && (cw.status == http.StatusOK || cw.status == http.StatusPartialContent) {
		// The listener may be gone; the count is still owed to the log.
		if err := sc.AddAccessBytes(context.WithoutCancel(ctx), entry.ID, cw.bytes); err != nil {
			s.log.Warn("access log byte count lost", "access", entry.ID, "error", err)
		}
	}
	return nil
}

// jsonErrors turns the plain-text errors http.ServeContent writes (416,
// 412) into the API's JSON errors.
type jsonErrors struct {
	http.ResponseWriter
	failed bool
}

func (w *jsonErrors) WriteHeader(code int) {
	if code < 400 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.failed = true
	e := errorf(code, "precondition_failed", "a precondition of the request failed")
	if code == http.StatusRequestedRangeNotSatisfiable {
		e = errorf(code, "range_not_satisfiable", "the range lies outside the recording")
	}
	writeError(w.ResponseWriter, e)
}

func (w *jsonErrors) Write(b []byte) (int, error) {
	if w.failed {
		return len(b), nil // ServeContent's text body; the JSON one is written
	}
	return w.ResponseWriter.Write(b)
}

func (w *jsonErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// storageError is an object store failure: the client may retry later.
type storageError struct{ err error }

func (e storageError) Error() string { return "object store: " + e.err.Error() }
func (e storageError) Unwrap() error { return e.err }

// objectReader is an io.ReadSeeker over an object, opening a ranged read
// only when bytes are read, so http.ServeContent's seeks (to learn the size,
// to reach a range) cost no request to the store.
type objectReader struct {
	ctx  context.Context
	objs objects.Store
	key  string
	size int64
	pos  int64
	rc   io.ReadCloser // open at pos, or nil
	err  error         // the last read error other than EOF
}

func (o *objectReader) Seek(off int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = off
	case io.SeekCurrent:
		abs = o.pos + off
	case io.SeekEnd:
		abs = o.size + off
	default:
		return 0, fmt.Errorf("seek %s: bad whence %d", o.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek %s: negative position %d", o.key, abs)
	}
	if abs != o.pos {
		o.Close()
		o.pos = abs
	}
	return abs, nil
}

func (o *objectReader) Read(p []byte) (int, error) {
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if o.rc == nil {
		rc, err := o.objs.GetRange(o.ctx, o.key, o.pos, -1)
		if err != nil {
			o.err = err
			return 0, err
		}
		o.rc = rc
	}
	n, err := o.rc.Read(p)
	o.pos += int64(n)
	if errors.Is(err, io.EOF) && o.pos < o.size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		o.err = err
	}
	return n, err
}

// Close releases an open ranged read.
func (o *objectReader) Close() error {
	if o.rc == nil {
		return nil
	}
	err := o.rc.Close()
	o.rc = nil
	return err
}
