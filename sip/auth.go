package sip

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/blackbox-gw/blackbox/store"
)

// Digest authentication (RFC 3261 section 22, RFC 8760 for SHA-256) with
// github.com/icholy/digest doing the hashing. Nonces are stateless HMAC
// tokens (timestamp + random + MAC), so any node sharing the key can check
// them; nonce counts are tracked per node to refuse replays.

type authOutcome int

const (
	authOK        authOutcome = iota
	authChallenge             // no (usable) credentials: challenge
	authStale                 // right password, expired nonce: challenge with stale=true
	authFailed                // wrong password or unknown user, answered alike
)

type authenticator struct {
	db         *store.DB
	realm      string
	key        []byte
	ttl        time.Duration
	algorithms []string // order of preference in challenges
	now        func() time.Time

	mu   sync.Mutex
	seen map[string]nonceUse // nonce -> highest nc accepted
}

type nonceUse struct {
	nc      int
	expires time.Time
}

func newAuthenticator(db *store.DB, realm string, key []byte, ttl time.Duration, algorithms []string) *authenticator {
	return &authenticator{db: db, realm: realm, key: key, ttl: ttl, algorithms: algorithms, now: time.Now, seen: map[string]nonceUse{}}
}

const nonceRaw = 8 + 8 + 16 // unix nanos, random, truncated MAC

func (a *authenticator) newNonce() string {
	var b [nonceRaw]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.now().UnixNano()))
	_, _ = rand.Read(b[8:16])
	m := hmac.New(sha256.New, a.key)
	m.Write(b[:16])
	copy(b[16:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// nonceAge checks the MAC and returns how old the nonce is.
func (a *authenticator) nonceAge(nonce string) (time.Duration, bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceRaw {
		return 0, false
	}
	m := hmac.New(sha256.New, a.key)
	m.Write(b[:16])
	if !hmac.Equal(m.Sum(nil)[:16], b[16:]) {
		return 0, false
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	return a.now().Sub(issued), true
}

// challenges returns one header value per algorithm, preferred first.
func (a *authenticator) challenges(stale bool) []string {
	nonce := a.newNonce()
	out := make([]string, 0, len(a.algorithms))
	for _, alg := range a.algorithms {
		c := digest.Challenge{Realm: a.realm, Nonce: nonce, Algorithm: alg, QOP: []string{"auth"}, Stale: stale}
		out = append(out, c.String())
	}
	return out
}

// check verifies the credentials in header (Authorization or
// Proxy-Authorization) of req. An unknown user and a wrong password take the
// same path and the same time, so responses never reveal which usernames exist.
func (a *authenticator) check(ctx context.Context, req *sip.Request, header string) (store.SIPAccount, authOutcome, error) {
	var creds *digest.Credentials
	for _, h := range req.GetHeaders(header) {
		c, err := digest.ParseCredentials(h.Value())
		if err == nil && c.Realm == a.realm {
			creds = c
			break
		}
	}
	if creds == nil || creds.Username == "" || creds.Response == "" {
		return store.SIPAccount{}, authChallenge, nil
	}
	alg := strings.ToUpper(creds.Algorithm)
	if alg == "" {
		alg = "MD5"
	}
	if !a.offers(alg) || creds.QOP != "auth" || creds.Nc <= 0 || creds.Cnonce == "" {
		return store.SIPAccount{}, authChallenge, nil
	}
	age, ok := a.nonceAge(creds.Nonce)
	if !ok {
		return store.SIPAccount{}, authChallenge, nil
	}

	acct, err := a.db.SIPAccount(ctx, creds.Username)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.SIPAccount{}, authFailed, err
	}
	ha1 := acct.HA1MD5
	if alg == "SHA-256" {
		ha1 = acct.HA1SHA256
	}
	if !known || acct.Realm != a.realm {
		// Same work as a real check against a digest no password matches.
		ha1 = store.HA1(alg, creds.Username, a.realm, "\x00unknown")
		known = false
	}
	want, err := digest.Digest(&digest.Challenge{Realm: a.realm, Nonce: creds.Nonce, Algorithm: alg, QOP: []string{"auth"}},
		digest.Options{Method: string(req.Method), URI: creds.URI, Username: creds.Username, A1: ha1, Cnonce: creds.Cnonce, Count: creds.Nc})
	if err != nil {
		return store.SIPAccount{}, authChallenge, nil
	}
	match := subtle.ConstantTimeCompare([]byte(strings.ToLower(creds.Response)), []byte(want.Response)) == 1
	if !match || !known {
		return store.SIPAccount{}, authFailed, nil
	}
	if age > a.ttl {
		return store.SIPAccount{}, authStale, nil
	}
	if !a.useNonce(creds.Nonce, creds.Nc) {
		// A replayed (or reordered) nonce count: challenge again rather than
		// fail, so a retransmitting honest client recovers.
		return store.SIPAccount{}, authStale, nil
	}
	return acct, authOK, nil
}

func (a *authenticator) offers(alg string) bool {
	for _, x := range a.algorithms {
		if x == alg {
			return true
		}
	}
	return false
}

// useNonce accepts nc only if it is higher than any seen for this nonce.
func (a *authenticator) useNonce(nonce string, nc int) bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if u, ok := a.seen[nonce]; ok && nc <= u.nc {
		return false
	}
	a.seen[nonce] = nonceUse{nc: nc, expires: now.Add(a.ttl + time.Minute)}
	return true
}

// sweep forgets nonce counts of nonces too old to be accepted anyway.
func (a *authenticator) sweep() {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, u := range a.seen {
		if now.After(u.expires) {
			delete(a.seen, n)
		}
	}
}
