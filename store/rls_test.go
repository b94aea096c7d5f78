package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/blackbox-gw/blackbox/store"
)

// tenantTables are every table holding tenant rows, with the column naming
// the tenant. A table added without row-level security fails TestRLSCoversEveryTenantTable.
var tenantTables = map[string]string{
	"tenants": "id", "users": "tenant_id", "numbers": "tenant_id", "trunks": "tenant_id",
	"bindings": "tenant_id", "calls": "tenant_id", "audit_events": "tenant_id",
	"recordings": "tenant_id", "consent_events": "tenant_id",
	"policy_locks": "tenant_id", "policy_attempts": "tenant_id", "policy_spend": "tenant_id", "policy_suspensions": "tenant_id",
	"api_tokens": "tenant_id", "access_log": "tenant_id", "legal_holds": "tenant_id", "recording_deletions": "tenant_id",
}

// appendOnly are the tables whose history nobody rewrites.
var appendOnly = []string{"audit_events", "consent_events"}

// TestRLSProof is the isolation proof on Postgres: SQL that forgets its
// tenant filter, run in tenant B's scoped transaction as blackbox_app, sees
// and changes none of tenant A's rows.
func TestRLSProof(t *testing.T) {
	h := newHarness(t, "postgres")
	ctx := context.Background()
	db, sa, sb := tenantsIn(t, h)
	callA := populate(t, db, sa, "alice", "+14155550100", "carrier-a").call
	callB := populate(t, db, sb, "gina", "+14155550199", "carrier-b").call
	callsB, err := sb.Calls(ctx, store.CallFilter{})
	if err != nil || len(callsB) < 2 {
		t.Fatalf("B's calls: %v %v", callsB, err)
	}
	tenantA, tenantB := sa.Principal().TenantID(), sb.Principal().TenantID()

	for table, col := range tenantTables {
		// Non-vacuous: the same query in A's scope does see A's rows.
		seenByA, err := sa.RawStrings(ctx, `SELECT `+col+` FROM `+table)
		if err != nil || len(seenByA) == 0 {
			t.Fatalf("%s: A's own scope sees %d rows (%v)", table, len(seenByA), err)
		}
		seenByB, err := sb.RawStrings(ctx, `SELECT `+col+` FROM `+table)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if len(seenByB) == 0 {
			t.Fatalf("%s: B sees none of its own rows", table)
		}
		for _, tenant := range seenByB {
			if tenant != tenantB {
				t.Errorf("SELECT * FROM %s with no WHERE in B's scope returned a row of tenant %s", table, tenant)
			}
		}
	}
	ids, err := sb.RawStrings(ctx, `SELECT id FROM calls ORDER BY id DESC`)
	if err != nil || len(ids) != len(callsB) {
		t.Fatalf("unfiltered SELECT id FROM calls in B's scope: %v %v; want B's %d", ids, err, len(callsB))
	}
	for i, id := range ids {
		if id != callsB[i].ID {
			t.Fatalf("unfiltered SELECT id FROM calls in B's scope returned %s, not B's %s", id, callsB[i].ID)
		}
	}

	// Writes to A's rows from B's scope affect nothing.
	for _, stmt := range []string{
		`UPDATE calls SET end_reason = 'tampered'`,
		`UPDATE calls SET end_reason = 'tampered' WHERE id = '` + callA.ID + `'`,
		`DELETE FROM bindings WHERE tenant_id = '` + tenantA + `'`,
		`UPDATE trunks SET password_sealed = '' WHERE tenant_id = '` + tenantA + `'`,
		`DELETE FROM recordings WHERE call_id = '` + callA.ID + `'`,
		`UPDATE tenants SET name = 'pwned' WHERE id = '` + tenantA + `'`,
	} {
		n, err := sb.RawExec(ctx, stmt)
		if err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		if stmt == `UPDATE calls SET end_reason = 'tampered'` {
			if n != int64(len(callsB)) {
				t.Fatalf("%s in B's scope updated %d rows; want only B's %d", stmt, n, len(callsB))
			}
			continue
		}
		if n != 0 {
			t.Errorf("%s in B's scope affected %d of A's rows", stmt, n)
		}
	}
	// Writing a row into A's tenant, or moving B's row there, is refused.
	for _, stmt := range []string{
		`INSERT INTO calls (id, tenant_id, direction, caller, callee, a_call_id, invite_at) VALUES ('forged', '` + tenantA + `', 'outbound', '', '', '', 0)`,
		`UPDATE calls SET tenant_id = '` + tenantA + `' WHERE id = '` + callB.ID + `'`,
		`INSERT INTO audit_events (id, tenant_id, actor, action, at) VALUES ('forged', '` + tenantA + `', 'x', 'x', 0)`,
	} {
		if _, err := sb.RawExec(ctx, stmt); !errors.Is(err, store.ErrDenied) {
			t.Errorf("%s from B's scope: %v; want ErrDenied", stmt, err)
		}
	}
	got, err := sa.Call(ctx, callA.ID)
	if err != nil || got.EndReason != "" {
		t.Fatalf("A's call after B's attempts: %+v %v", got, err)
	}
	if ts, err := sa.Trunks(ctx); err != nil || len(ts) != 1 || ts[0].Password != "secret-of-carrier-a" {
		t.Fatalf("A's trunk after B's attempts: %+v %v", ts, err)
	}
	if tn, err := sa.Tenant(ctx); err != nil || tn.Name != "acme" {
		t.Fatalf("A's tenant after B's attempts: %+v %v", tn, err)
	}
}

// TestRLSWithoutScope: a connection of the gateway's role that set no scope
// (and a pooled one a scoped transaction just used) sees no tenant rows.
func TestRLSWithoutScope(t *testing.T) {
	h := newHarness(t, "postgres")
	h.dsn += "&pool_max_conns=1" // one connection: the scoped one is reused below
	ctx := context.Background()
	db, sa, _ := tenantsIn(t, h)
	populate(t, db, sa, "alice", "+14155550100", "carrier-a")
	if calls, err := sa.Calls(ctx, store.CallFilter{}); err != nil || len(calls) != 2 {
		t.Fatalf("scoped read: %v %v", calls, err)
	}
	for q, want := range map[string]string{
		`SELECT current_user`: "blackbox_app",
		`SELECT COALESCE(current_setting('app.tenant_id', true), '')`: "",
		`SELECT count(*)::text FROM calls`:                            "0",
		`SELECT count(*)::text FROM tenants`:                          "0",
		`SELECT count(*)::text FROM audit_events`:                     "0",
	} {
		got, err := db.RawUnscoped(ctx, q)
		if err != nil || got != want {
			t.Errorf("%s outside a scope: %q %v; want %q", q, got, err, want)
		}
	}
	// The gateway's role can neither lift the policies nor become the owner.
	for stmt, want := range map[string]string{
		`ALTER TABLE calls DISABLE ROW LEVEL SECURITY`:   "must be owner",
		`ALTER TABLE calls NO FORCE ROW LEVEL SECURITY`:  "must be owner",
		`DROP POLICY tenant_isolation ON calls`:          "must be owner",
		`ALTER TABLE audit_events DISABLE TRIGGER ALL`:   "must be owner",
		`SET ROLE blackbox_owner`:                        "permission denied",
		`CREATE TABLE calls_copy AS SELECT * FROM calls`: "permission denied",
	} {
		if err := db.RawUnscopedExec(ctx, stmt); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("blackbox_app %s: %v; want an error with %q", stmt, err, want)
		}
	}
}

// TestAppendOnly: the gateway's role has no UPDATE or DELETE on the
// append-only tables, and the owner, whom no GRANT limits, is stopped by
// their triggers.
func TestAppendOnly(t *testing.T) {
	h := newHarness(t, "postgres")
	ctx := context.Background()
	db, sa, _ := tenantsIn(t, h)
	populate(t, db, sa, "alice", "+14155550100", "carrier-a")
	owner, err := pgx.Connect(ctx, h.pg.OwnerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	// The owner in the system scope sees every row: only the trigger stands
	// between it and the history.
	ownerExec := func(stmt string) error {
		tx, err := owner.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT set_config('app.scope', 'system', true)`); err != nil {
			return err
		}
		var rows int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&rows); err != nil || rows == 0 {
			return fmt.Errorf("owner sees %d audit rows in the system scope (%v)", rows, err)
		}
		_, err = tx.Exec(ctx, stmt)
		return err
	}
	for _, table := range appendOnly {
		for _, stmt := range []string{`UPDATE ` + table + ` SET tenant_id = tenant_id`, `DELETE FROM ` + table} {
			if _, err := sa.RawExec(ctx, stmt); !errors.Is(err, store.ErrDenied) {
				t.Errorf("blackbox_app %s: %v; want ErrDenied", stmt, err)
			}
			if err := ownerExec(stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("owner %s: %v; want the append-only trigger's refusal", stmt, err)
			}
		}
		if err := ownerExec(`TRUNCATE ` + table + ` CASCADE`); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("owner TRUNCATE %s: %v; want the append-only trigger's refusal", table, err)
		}
	}
	evs, err := sa.AuditEvents(ctx, store.AuditFilter{})
	if err != nil || len(evs) < 4 {
		t.Fatalf("audit history after the attempts: %d %v", len(evs), err)
	}
}

// TestRLSCoversEveryTenantTable reads the catalog: every table with a
// tenant column has row-level security enabled and forced, and a policy.
func TestRLSCoversEveryTenantTable(t *testing.T) {
	h := newHarness(t, "postgres")
	ctx := context.Background()
	h.db(t)
	su, err := pgx.Connect(ctx, h.pg.SuperDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	rows, err := su.Query(ctx, `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
			(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
			pg_get_userbyid(c.relowner),
			(SELECT COALESCE(string_agg(p.polcmd::text || ' ' || pg_get_expr(p.polqual, p.polrelid), '; '), '') FROM pg_policy p WHERE p.polrelid = c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'r'
		  AND (c.relname = 'tenants' OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'))`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var name, owner, policy string
		var enabled, forced bool
		var policies int
		if err := rows.Scan(&name, &enabled, &forced, &policies, &owner, &policy); err != nil {
			t.Fatal(err)
		}
		seen[name] = true
		if !enabled || !forced || policies == 0 {
			t.Errorf("table %s: row security enabled=%v forced=%v policies=%d", name, enabled, forced, policies)
		}
		// One policy for every command, keyed on the transaction's settings.
		if policies != 1 || !strings.HasPrefix(policy, "* ") || !strings.Contains(policy, "current_setting('app.tenant_id'::text, true)") ||
			!strings.Contains(policy, "current_setting('app.scope'::text, true) = 'system'::text") {
			t.Errorf("table %s: policies %q", name, policy)
		}
		if owner == "blackbox_app" {
			t.Errorf("table %s is owned by the gateway's role", name)
		}
		if _, ok := tenantTables[name]; !ok {
			t.Errorf("table %s is not in the RLS proof's tenantTables: add it there", name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for name := range tenantTables {
		if !seen[name] {
			t.Errorf("tenantTables lists %s, which the schema lacks", name)
		}
	}
}

// TestNoStoreCodeRewritesHistory: no query of the store updates or deletes
// rows of an append-only table (on SQLite this is the guarantee; Postgres
// adds its grants and triggers).
func TestNoStoreCodeRewritesHistory(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("store sources: %v %v", files, err)
	}
	for _, table := range appendOnly {
		re := regexp.MustCompile(`(?is)\b(UPDATE|DELETE\s+FROM|TRUNCATE|REPLACE\s+INTO|INSERT\s+OR\s+REPLACE\s+INTO)\s+` + table + `\b`)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if m := re.Find(src); m != nil {
				t.Errorf("%s rewrites the append-only %s: %q", f, table, m)
			}
		}
	}
}

// TestAppendOnlyOnBothBackends: in a tenant's own scope, its audit and
// consent history can be added to and read, never changed or removed.
func TestAppendOnlyOnBothBackends(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		db, sa, _ := tenantsIn(t, h)
		populate(t, db, sa, "alice", "+14155550100", "carrier-a")
		for _, table := range appendOnly {
			for _, stmt := range []string{`UPDATE ` + table + ` SET tenant_id = tenant_id`, `DELETE FROM ` + table} {
				if _, err := sa.RawExec(ctx, stmt); !errors.Is(err, store.ErrDenied) {
					t.Errorf("%s: %v; want ErrDenied", stmt, err)
				}
			}
			if n, err := sa.RawStrings(ctx, `SELECT id FROM `+table+` WHERE tenant_id = $1`, sa.Principal().TenantID()); err != nil || len(n) == 0 {
				t.Errorf("%s after the attempts: %d rows %v", table, len(n), err)
			}
		}
	})
}
