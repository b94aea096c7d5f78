package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// onPostgres are the store tests written against one store (openTest,
// twoTenants, openClocked) that TestOnPostgres reruns on Postgres. The
// suite's own tests take a harness and run on both backends already.
var onPostgres = map[string]func(*testing.T){
	"TestPolicyAdmitValidates":              TestPolicyAdmitValidates,
	"TestPolicyCountersAreTenantScoped":     TestPolicyCountersAreTenantScoped,
	"TestPolicySettleChecks":                TestPolicySettleChecks,
	"TestPolicyRetryAfterAndRenew":          TestPolicyRetryAfterAndRenew,
	"TestSuspensionLiftPermissions":         TestSuspensionLiftPermissions,
	"TestAccessLogFoldsSessions":            TestAccessLogFoldsSessions,
	"TestSearchCallsAndRecordings":          TestSearchCallsAndRecordings,
	"TestHolds":                             TestHolds,
	"TestStoreRefusesLowerRoles":            TestStoreRefusesLowerRoles,
	"TestRecordingDeletion":                 TestRecordingDeletion,
	"TestOwnerDeletionResumedKeepsTheOwner": TestOwnerDeletionResumedKeepsTheOwner,
	"TestDeleteCallMetadataKeepsRecordings": TestDeleteCallMetadataKeepsRecordings,
}

// sqliteOnly are such tests that stay on SQLite, with the reason.
var sqliteOnly = map[string]string{
	"TestTokens": "reads the SQLite file; token isolation and tokens at rest run on both in TestTenantIsolation and TestNoSecretAtRest",
}

func TestOnPostgres(t *testing.T) {
	suiteBackend = "postgres"
	defer func() { suiteBackend = "sqlite" }()
	names := make([]string, 0, len(onPostgres))
	for name := range onPostgres {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(strings.TrimPrefix(name, "Test"), onPostgres[name])
	}
}

// TestEveryStoreTestRunsOnPostgres reads the package's tests: one that
// opens its store through a single-backend helper must be rerun by
// TestOnPostgres or say why not in sqliteOnly.
func TestEveryStoreTestRunsOnPostgres(t *testing.T) {
	helpers := map[string]bool{"openTest": true, "twoTenants": true, "openClocked": true, "newPolicyEnv": true}
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var missing []string
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Body == nil {
				continue
			}
			uses := false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					if id, ok := call.Fun.(*ast.Ident); ok && helpers[id.Name] {
						uses = true
					}
				}
				return !uses
			})
			_, rerun := onPostgres[fn.Name.Name]
			_, exempt := sqliteOnly[fn.Name.Name]
			if uses && !rerun && !exempt {
				missing = append(missing, fn.Name.Name)
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("tests on one backend only; add them to onPostgres (or sqliteOnly, with the reason): %s", strings.Join(missing, ", "))
	}
}
