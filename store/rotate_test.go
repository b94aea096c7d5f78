package store_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/secrets"
)

func keyring(t *testing.T, keys ...string) *secrets.Keyring {
	t.Helper()
	kr, err := secrets.Parse(strings.Join(keys, ","))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newKey(t *testing.T) string {
	t.Helper()
	k, err := secrets.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRotateSecrets(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		oldKey, newKey, strayKey := newKey(t), newKey(t), newKey(t)
		db := h.open(t, store.Options{Keyring: keyring(t, oldKey)})
		passwords := map[string]string{}
		for _, tenant := range []string{"acme", "globex", "initech"} {
			if _, err := db.CreateTenant(ctx, tenant, "US"); err != nil {
				t.Fatal(err)
			}
			if tenant == "initech" {
				continue // a tenant without secrets is visited all the same
			}
			p, _ := db.AdminScope(ctx, tenant)
			for _, name := range []string{"main", "backup"} {
				pw := "pw-" + tenant + "-" + name
				if _, err := db.In(p).CreateTrunk(ctx, store.NewTrunk{Name: name, Address: "192.0.2.1:5060", Username: "u", Password: pw}); err != nil {
					t.Fatal(err)
				}
				passwords[tenant+"/"+name] = pw
			}
			// A trunk without credentials has nothing to reseal.
			if _, err := db.In(p).CreateTrunk(ctx, store.NewTrunk{Name: "open", Address: "192.0.2.2:5060"}); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()

		rotating := h.open(t, store.Options{Keyring: keyring(t, newKey, oldKey)})
		res, err := rotating.RotateSecrets(ctx)
		if err != nil || res != (store.RotateResult{Tenants: 3, Resealed: 4}) {
			t.Fatalf("first rotation: %+v %v", res, err)
		}
		if res, err := rotating.RotateSecrets(ctx); err != nil || res != (store.RotateResult{Tenants: 3, Current: 4}) {
			t.Fatalf("second rotation must reseal nothing: %+v %v", res, err)
		}
		rotating.Close()

		// The old key can go now: the new one alone opens every secret.
		db = h.open(t, store.Options{Keyring: keyring(t, newKey)})
		for _, tenant := range []string{"acme", "globex"} {
			p, _ := db.AdminScope(ctx, tenant)
			trunks, err := db.In(p).Trunks(ctx)
			if err != nil {
				t.Fatalf("%s trunks under the new key alone: %v", tenant, err)
			}
			for _, tr := range trunks {
				if want := passwords[tenant+"/"+tr.Name]; tr.Password != want {
					t.Errorf("%s/%s password %q after rotation, want %q", tenant, tr.Name, tr.Password, want)
				}
			}
			evs, err := db.In(p).AuditEvents(ctx, store.AuditFilter{Action: "secrets.rotate"})
			if err != nil || len(evs) != 2 || evs[1].Details["resealed"] != float64(2) || evs[0].Details["current"] != float64(2) {
				t.Fatalf("%s rotation audit: %+v %v", tenant, evs, err)
			}
		}
		p, _ := db.AdminScope(ctx, "initech")
		if evs, err := db.In(p).AuditEvents(ctx, store.AuditFilter{Action: "secrets.rotate"}); err != nil || len(evs) != 2 {
			t.Fatalf("initech rotation audit: %+v %v", evs, err)
		}
		db.Close()

		// Keys that open nothing stop the rotation with a clear error.
		stray := h.open(t, store.Options{Keyring: keyring(t, strayKey)})
		if _, err := stray.RotateSecrets(ctx); !errors.Is(err, secrets.ErrUndecryptable) || !strings.Contains(err.Error(), "trunk") {
			t.Fatalf("rotation with an unrelated key: %v", err)
		}
		if _, err := h.open(t, store.Options{}).RotateSecrets(ctx); !errors.Is(err, secrets.ErrNoKey) {
			t.Fatalf("rotation without a key: %v", err)
		}
	})
}

// TestRotationReachesEverySealedColumn: every column named *_sealed in the
// schema is one RotateSecrets re-encrypts.
func TestRotationReachesEverySealedColumn(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		_, sa, _ := tenantsIn(t, h)
		q := `SELECT table_name || '.' || column_name FROM information_schema.columns
			WHERE table_schema = 'public' AND column_name LIKE '%\_sealed' ESCAPE '\'`
		if h.pg == nil {
			q = `SELECT m.name || '.' || p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
				WHERE m.type = 'table' AND p.name LIKE '%\_sealed' ESCAPE '\'`
		}
		cols, err := sa.RawStrings(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		known := store.SealedColumns()
		sort.Strings(cols)
		sort.Strings(known)
		if len(cols) == 0 || strings.Join(cols, ",") != strings.Join(known, ",") {
			t.Fatalf("sealed columns in the schema %v, reached by rotation %v", cols, known)
		}
	})
}
