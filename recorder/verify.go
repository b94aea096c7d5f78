package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// Mismatch is a stored recording whose object does not prove what its row
// says. Want and Got are hex SHA-256 (of the object, or of its PCM data when
// Err is ErrAudioMismatch); Err says what went wrong when the object could
// not be read at all.
type Mismatch struct {
	RecordingID, CallID, Key, Want, Got string
	Err                                 error
}

// Verify re-reads stored recordings and checks each object's SHA-256, and
// that of its PCM data, against the row. scope limits it to one tenant; nil
// checks every tenant in db. callID "" checks all of the tenant's calls.
// The error is for failures to list recordings; unreadable or differing
// objects are Mismatches.
func Verify(ctx context.Context, db *store.DB, objs objects.Store, scope *store.Scope, callID string) ([]Mismatch, error) {
	scopes := []*store.Scope{scope}
	if scope == nil {
		tenants, err := db.Tenants(ctx)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		scopes = scopes[:0]
		for _, t := range tenants {
			scopes = append(scopes, db.In(store.System(t.ID)))
		}
	}
	var out []Mismatch
	for _, sc := range scopes {
		before := ""
		for {
			page, err := sc.Recordings(ctx, store.RecordingFilter{CallID: callID, State: store.RecordingStored, Before: before, Limit: 500})
			if err != nil {
				return out, fmt.Errorf("verify: %w", err)
			}
			for _, r := range page {
				if m, bad := verifyOne(ctx, objs, r); bad {
					out = append(out, m)
				}
			}
			if len(page) < 500 {
				break
			}
			before = page[len(page)-1].ID
		}
	}
	return out, nil
}

func verifyOne(ctx context.Context, objs objects.Store, r store.Recording) (Mismatch, bool) {
	m := Mismatch{RecordingID: r.ID, CallID: r.CallID, Key: r.ObjectKey, Want: r.SHA256}
	rc, err := objs.Get(ctx, r.ObjectKey)
	if err != nil {
		m.Err = err
		return m, true
	}
	defer rc.Close()
	obj, audio := sha256.New(), sha256.New()
	// The PCM data follows the fixed 44-byte header Blackbox writes.
	if _, err := io.CopyN(obj, rc, wavHeaderSize); err != nil {
		m.Err = fmt.Errorf("read object: %w", err)
		return m, true
	}
	if _, err := io.Copy(io.MultiWriter(obj, audio), rc); err != nil {
		m.Err = fmt.Errorf("read object: %w", err)
		return m, true
	}
	if got := hex.EncodeToString(obj.Sum(nil)); got != r.SHA256 {
		m.Got = got
		return m, true
	}
	if got := hex.EncodeToString(audio.Sum(nil)); got != r.AudioSHA256 {
		m.Want, m.Got, m.Err = r.AudioSHA256, got, ErrAudioMismatch
		return m, true
	}
	return m, false
}
