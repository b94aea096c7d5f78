package secrets_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blackbox-gw/blackbox/store/secrets"
)

// The specification's vectors (github.com/fernet/spec, shipped in fernet-go):
// one valid token and the invalid ones that do not depend on its age (we
// never expire tokens).
const (
	specSecret = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
	specToken  = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
)

var specInvalid = map[string]string{
	"incorrect mac":                       "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==",
	"too short":                           "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==",
	"invalid base64":                      "%%%%%%%%%%%%%AECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
	"payload not a multiple of the block": "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOm73QeoCk9uGib28Xe5vz6oxq5nmxbx_v7mrfyudzUm",
	"payload padding error":               "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNYIbkuKNqOhw==",
	"incorrect IV":                        "gAAAAAAdwJ6xBQECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAkLhFLHpGtDBRLRTZeUfWgHSv49TF2AUEZ1TIvcZjK1zQ==",
	"very short payload":                  "gAAAAABdnQ1TUKh2OE_ggbyCIxfg",
	"super short payload":                 "gAAA",
	"empty":                               "",
}

func parse(t *testing.T, keys ...string) *secrets.Keyring {
	t.Helper()
	k, err := secrets.Parse(strings.Join(keys, ","))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func generate(t *testing.T) string {
	t.Helper()
	k, err := secrets.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSpecVectors(t *testing.T) {
	k := parse(t, specSecret)
	if msg, err := k.Open(specToken); err != nil || msg != "hello" {
		t.Fatalf("spec token: %q %v", msg, err)
	}
	for name, tok := range specInvalid {
		msg, err := k.Open(tok)
		if !errors.Is(err, secrets.ErrUndecryptable) || msg != "" {
			t.Errorf("%s: %q %v; want ErrUndecryptable and no message", name, msg, err)
		}
	}
}

func TestSealOpenAndWrongKey(t *testing.T) {
	a, b := generate(t), generate(t)
	ka := parse(t, a)
	tok, err := ka.Seal("trunk-password")
	if err != nil || strings.Contains(tok, "trunk-password") {
		t.Fatalf("seal: %q %v", tok, err)
	}
	if pw, err := ka.Open(tok); err != nil || pw != "trunk-password" {
		t.Fatalf("open: %q %v", pw, err)
	}
	// fernet-go says nothing on failure; the keyring must say it clearly,
	// never hand back an empty password.
	if pw, err := parse(t, b).Open(tok); !errors.Is(err, secrets.ErrUndecryptable) || pw != "" {
		t.Fatalf("wrong key: %q %v", pw, err)
	}
	// An empty secret is a secret too, distinct from a failure.
	empty, _ := ka.Seal("")
	if pw, err := ka.Open(empty); err != nil || pw != "" {
		t.Fatalf("empty secret: %q %v", pw, err)
	}
	var none *secrets.Keyring
	if _, err := none.Seal("x"); !errors.Is(err, secrets.ErrNoKey) {
		t.Fatalf("seal without keys: %v", err)
	}
	if _, err := none.Open(tok); !errors.Is(err, secrets.ErrNoKey) {
		t.Fatalf("open without keys: %v", err)
	}
}

func TestReseal(t *testing.T) {
	oldKey, newKey := generate(t), generate(t)
	tok, _ := parse(t, oldKey).Seal("s3cret")
	both := parse(t, newKey, oldKey)
	if both.Len() != 2 {
		t.Fatalf("Len = %d", both.Len())
	}
	fresh, changed, err := both.Reseal(tok)
	if err != nil || !changed || fresh == tok {
		t.Fatalf("reseal under the new key: %v %v", changed, err)
	}
	if pw, err := parse(t, newKey).Open(fresh); err != nil || pw != "s3cret" {
		t.Fatalf("resealed token under the new key alone: %q %v", pw, err)
	}
	again, changed, err := both.Reseal(fresh)
	if err != nil || changed || again != fresh {
		t.Fatalf("resealing a current token must keep it: %v %v", changed, err)
	}
	if _, _, err := parse(t, newKey).Reseal(tok); !errors.Is(err, secrets.ErrUndecryptable) {
		t.Fatalf("reseal without the old key: %v", err)
	}
}

func TestParse(t *testing.T) {
	a, b := generate(t), generate(t)
	k, err := secrets.Parse("# keys, newest first\n" + a + " # since today, rotate soon\n\n" + b + "\n")
	if err != nil || k.Len() != 2 {
		t.Fatalf("file form: %v", err)
	}
	if k, err := secrets.Parse(a + ", " + b); err != nil || k.Len() != 2 {
		t.Fatalf("env form: %v", err)
	}
	for name, in := range map[string]string{"empty": "", "comments only": "# nothing\n", "commas only": ",,"} {
		if _, err := secrets.Parse(in); !errors.Is(err, secrets.ErrNoKey) {
			t.Errorf("%s: %v; want ErrNoKey", name, err)
		}
	}
	if _, err := secrets.Parse(a + ",not-a-key"); err == nil || !strings.Contains(err.Error(), "#2") {
		t.Fatalf("bad second key: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sub", "fernet.key")
	t.Setenv(secrets.EnvKeys, "")
	if _, _, err := secrets.Load(file, false); !errors.Is(err, secrets.ErrNoKey) {
		t.Fatalf("missing file without generate: %v", err)
	}
	if _, _, err := secrets.Load("", true); !errors.Is(err, secrets.ErrNoKey) {
		t.Fatalf("no file named: %v", err)
	}
	k, src, err := secrets.Load(file, true)
	if err != nil || src != secrets.FromGenerated || k.Len() != 1 {
		t.Fatalf("generate: %v %v", src, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file mode: %v %v", fi, err)
	}
	tok, _ := k.Seal("x")
	k2, src, err := secrets.Load(file, true)
	if err != nil || src != secrets.FromFile {
		t.Fatalf("second load reads the file: %v %v", src, err)
	}
	if pw, err := k2.Open(tok); err != nil || pw != "x" {
		t.Fatalf("the generated key persists: %v", err)
	}
	other := generate(t)
	t.Setenv(secrets.EnvKeys, other)
	k3, src, err := secrets.Load(file, true)
	if err != nil || src != secrets.FromEnv {
		t.Fatalf("environment first: %v %v", src, err)
	}
	if _, err := k3.Open(tok); !errors.Is(err, secrets.ErrUndecryptable) {
		t.Fatalf("env key replaced the file's: %v", err)
	}
	t.Setenv(secrets.EnvKeys, "garbage")
	if _, _, err := secrets.Load(file, true); err == nil || !strings.Contains(err.Error(), secrets.EnvKeys) {
		t.Fatalf("bad env key: %v", err)
	}
}

func TestDerive(t *testing.T) {
	a, b := generate(t), generate(t)
	d1, _ := parse(t, a, b).Derive("nonce")
	d2, _ := parse(t, a).Derive("nonce")
	d3, _ := parse(t, a).Derive("links")
	d4, _ := parse(t, b).Derive("nonce")
	if len(d1) != 32 || string(d1) != string(d2) || string(d1) == string(d3) || string(d1) == string(d4) {
		t.Fatal("derived keys: same newest key and purpose must agree, anything else differ")
	}
}
