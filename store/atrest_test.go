package store_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// TestNoSecretAtRest provisions users, API tokens and trunks, then searches
// everything the backend keeps (the SQLite file with its WAL, or a pg_dump)
// for every password, token and the Fernet key: none may be there in
// plaintext.
func TestNoSecretAtRest(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		db := h.db(t)
		var secrets, visible []string
		for i, tenant := range []string{"acme", "globex"} {
			if _, err := db.CreateTenant(ctx, tenant, "US"); err != nil {
				t.Fatal(err)
			}
			p, _ := db.AdminScope(ctx, tenant)
			s := db.In(p)
			for j := range 3 {
				user := fmt.Sprintf("rep%d-%s", j, tenant)
				pw := fmt.Sprintf("sip-password-%d-%d-Zq7", i, j)
				if _, err := s.CreateUser(ctx, store.NewUser{Username: user, Role: store.RoleRep, Realm: "bb", Password: pw}); err != nil {
					t.Fatal(err)
				}
				secrets, visible = append(secrets, pw), append(visible, user)
				_, token, err := s.CreateToken(ctx, store.NewToken{Username: user, Name: "crm-" + user, TTL: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				secrets, visible = append(secrets, token), append(visible, "crm-"+user)
			}
			// A password changed later must not linger either.
			changed := "changed-password-" + tenant
			if err := s.SetPassword(ctx, "rep0-"+tenant, "bb", changed); err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, changed)
			for j := range 2 {
				name := fmt.Sprintf("carrier%d", j)
				pw := fmt.Sprintf("trunk-password-%d-%d-Xk2", i, j)
				if _, err := s.CreateTrunk(ctx, store.NewTrunk{Name: name, Address: "192.0.2.1:5060", Username: "acct-" + tenant, Password: pw}); err != nil {
					t.Fatal(err)
				}
				secrets = append(secrets, pw)
			}
			visible = append(visible, "acct-"+tenant)
		}
		// Ciphertext decrypts back: the secrets are there, only sealed.
		p, _ := db.AdminScope(ctx, "acme")
		if ts, err := db.In(p).Trunks(ctx); err != nil || len(ts) != 2 || ts[0].Password != "trunk-password-0-0-Xk2" {
			t.Fatalf("trunks: %+v %v", ts, err)
		}
		db.Close()

		files := h.atRest(t)
		all := bytes.Join(mapValues(files), nil)
		for _, v := range visible {
			if !bytes.Contains(all, []byte(v)) {
				t.Fatalf("%q is not at rest either: the search cannot see data (%d bytes searched)", v, len(all))
			}
		}
		for name, data := range files {
			for _, secret := range append(secrets, h.key) {
				if bytes.Contains(data, []byte(secret)) {
					t.Errorf("%q in plaintext in %s", secret, name)
				}
			}
		}
	})
}

func mapValues(m map[string][]byte) [][]byte {
	out := make([][]byte, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
