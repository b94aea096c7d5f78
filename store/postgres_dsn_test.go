package store

import (
	"errors"
	"net/url"
	"testing"
)

func TestSplitPostgresDSN(t *testing.T) {
	for _, c := range []struct {
		name, dsn, app, migrate string
		err                     error
	}{
		{name: "app only", dsn: "postgres://app:pw@db:5432/bb?sslmode=disable",
			app: "postgres://app:pw@db:5432/bb?sslmode=disable"},
		{name: "owner with password", dsn: "postgres://app:pw@db/bb?migrate_as=owner&migrate_password=p%40ss%2Fw%26rd&pool_max_conns=8",
			app: "postgres://app:pw@db/bb?pool_max_conns=8", migrate: "postgres://owner:p%40ss%2Fw&rd@db/bb?pool_max_conns=8"},
		{name: "owner from pgpass", dsn: "postgres://app@db/bb?migrate_as=owner",
			app: "postgres://app@db/bb", migrate: "postgres://owner@db/bb"},
		{name: "password alone", dsn: "postgres://app@db/bb?migrate_password=x", err: ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			app, migrate, err := splitPostgresDSN(c.dsn)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || app != c.app || migrate != c.migrate {
				t.Fatalf("got %q %q %v\nwant %q %q", app, migrate, err, c.app, c.migrate)
			}
			if migrate != "" {
				u, _ := url.Parse(migrate)
				if pw, _ := u.User.Password(); c.name == "owner with password" && pw != "p@ss/w&rd" {
					t.Fatalf("owner password decoded as %q", pw)
				}
			}
		})
	}
}

func TestBindRenumbersUnusedArguments(t *testing.T) {
	for _, c := range []struct {
		sql      string
		args     []any
		wantSQL  string
		wantArgs []any
	}{
		{"SELECT $1, $2", []any{"a", "b"}, "SELECT $1, $2", []any{"a", "b"}},
		{"SELECT x FROM t WHERE a = $1 AND 1 = 1", []any{"t", "u"}, "SELECT x FROM t WHERE a = $1 AND 1 = 1", []any{"t"}},
		{"SELECT $1, $3, $3", []any{"a", "b", "c"}, "SELECT $1, $2, $2", []any{"a", "c"}},
		{"SELECT $10, $1", []any{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, "SELECT $2, $1", []any{1, 10}},
		{"SELECT 1", []any{"a"}, "SELECT 1", []any{}},
		{"SELECT $$", []any{"a"}, "SELECT $$", []any{}},
	} {
		sql, args := bind(c.sql, c.args)
		if sql != c.wantSQL || len(args) != len(c.wantArgs) {
			t.Errorf("bind(%q, %v) = %q %v; want %q %v", c.sql, c.args, sql, args, c.wantSQL, c.wantArgs)
			continue
		}
		for i := range args {
			if args[i] != c.wantArgs[i] {
				t.Errorf("bind(%q): args %v; want %v", c.sql, args, c.wantArgs)
			}
		}
	}
}
