package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

func runTokenCreate(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("token create")
	user := c.String("user", "", "the username the token acts as (with that user's role)")
	name := c.String("name", "", "a label, e.g. crm-sync")
	ttl := c.Duration("ttl", 720*time.Hour, "lifetime, at most 8784h (366 days)")
	_, scope, err := c.start(ctx, args, "user")
	if err != nil {
		return err
	}
	defer c.close()
	t, secret, err := scope.CreateToken(ctx, store.NewToken{Username: *user, Name: *name, TTL: *ttl})
	if err != nil {
		return err
	}
	// The secret goes alone on stdout so scripts can capture it; the rest
	// is for the operator.
	fmt.Fprintf(env.stderr, "token %s for %s created, expires %s. It is shown once; only its hash is kept.\n",
		t.ID, *user, t.ExpiresAt.Local().Format(time.RFC3339))
	fmt.Fprintln(env.stdout, secret)
	return nil
}

func runTokenRevoke(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("token revoke")
	id := c.String("id", "", "token id (blackbox token list)")
	_, scope, err := c.start(ctx, args, "id")
	if err != nil {
		return err
	}
	defer c.close()
	t, err := scope.RevokeToken(ctx, *id)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "token %s of %s revoked at %s\n", t.ID, t.Username, t.RevokedAt.Local().Format(time.RFC3339))
	return nil
}

func runTokenList(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("token list")
	user := c.String("user", "", "only this user's tokens")
	_, scope, err := c.start(ctx, args)
	if err != nil {
		return err
	}
	defer c.close()
	ts, err := scope.Tokens(ctx, store.TokenFilter{Username: *user})
	if err != nil {
		return err
	}
	now := time.Now()
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tUSER\tNAME\tSTATE\tEXPIRES\tLAST USED")
	for _, t := range ts {
		state := "active"
		switch {
		case !t.RevokedAt.IsZero():
			state = "revoked"
		case !t.Active(now):
			state = "expired"
		}
		used := "-"
		if !t.LastUsedAt.IsZero() {
			used = t.LastUsedAt.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Username, t.Name, state, t.ExpiresAt.Local().Format(time.RFC3339), used)
	}
	return w.Flush()
}
