package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/store"
)

// runPolicyCheck validates a policy file without touching any store: every
// error with file:line:column, exit 1; on success a one-line summary.
func runPolicyCheck(ctx context.Context, env *cli, args []string) error {
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one policy FILE", errUsage)
	}
	sum, errs := policy.Check(pos[0])
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(env.stderr, e)
		}
		return fmt.Errorf("%s: %d error(s)", pos[0], len(errs))
	}
	fmt.Fprintln(env.stdout, sum)
	return nil
}

func runSuspensionList(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("suspension list")
	user := c.String("user", "", "only this user's")
	history := c.Bool("all", false, "include lifted suspensions")
	asJSON := c.Bool("json", false, "print JSON")
	_, scope, err := c.start(ctx, args)
	if err != nil {
		return err
	}
	defer c.close()
	ss, err := scope.Suspensions(ctx, store.SuspensionFilter{Username: *user, Lifted: *history})
	if err != nil {
		return err
	}
	if *asJSON {
		type js struct {
			ID        string     `json:"id"`
			User      string     `json:"user,omitempty"`
			Cause     string     `json:"cause"`
			Detail    string     `json:"detail"`
			CreatedAt time.Time  `json:"created_at"`
			LiftedAt  *time.Time `json:"lifted_at,omitempty"`
			LiftedBy  string     `json:"lifted_by,omitempty"`
		}
		out := make([]js, 0, len(ss))
		for _, s := range ss {
			out = append(out, js{s.ID, s.Username, s.Cause, s.Detail, s.CreatedAt, optTime(s.LiftedAt), s.LiftedBy})
		}
		return writeJSON(env.stdout, out)
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SINCE\tSUBJECT\tCAUSE\tDETAIL\tLIFTED")
	for _, s := range ss {
		subject := "tenant"
		if s.Username != "" {
			subject = "user " + s.Username
		}
		lifted := "-"
		if !s.LiftedAt.IsZero() {
			lifted = s.LiftedAt.Local().Format(time.RFC3339) + " by " + s.LiftedBy
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.CreatedAt.Local().Format(time.RFC3339), subject, s.Cause, s.Detail, lifted)
	}
	return w.Flush()
}

func runSuspensionLift(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("suspension lift")
	user := c.String("user", "", "lift this user's suspension (omit: the tenant-wide one)")
	_, scope, err := c.start(ctx, args)
	if err != nil {
		return err
	}
	defer c.close()
	lifted, err := scope.LiftSuspensions(ctx, *user)
	if err != nil {
		return err
	}
	subject := "tenant " + c.tenant
	if *user != "" {
		subject = "user " + *user
	}
	if len(lifted) == 0 {
		return fmt.Errorf("%s has no suspension in force", subject)
	}
	fmt.Fprintf(env.stdout, "lifted %d suspension(s) of %s\n", len(lifted), subject)
	return nil
}
