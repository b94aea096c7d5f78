package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/store"
)

// tenantCmd is the shape every tenant-scoped subcommand shares: --config
// and --tenant, required flags checked before anything is opened, and the
// tenant's admin scope opened for the command and closed after it.
type tenantCmd struct {
	*flag.FlagSet
	storeFlags
	db *store.DB
}

func newTenantCmd(name string) *tenantCmd {
	c := &tenantCmd{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.register(c.FlagSet, true)
	return c
}

// parse parses args (flags anywhere among positional arguments) and
// requires --tenant and the named string flags.
func (c *tenantCmd) parse(args []string, required ...string) ([]string, error) {
	pos, err := parseArgs(c.FlagSet, args)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, name := range append([]string{"tenant"}, required...) {
		if f := c.Lookup(name); f == nil || strings.TrimSpace(f.Value.String()) == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: missing %s", errUsage, strings.Join(missing, ", "))
	}
	return pos, nil
}

// open loads the configuration, opens the store and the tenant's scope;
// close releases them.
func (c *tenantCmd) open(ctx context.Context) (*config.Config, *store.Scope, error) {
	cfg, db, scope, err := adminScope(ctx, c.storeFlags)
	if err != nil {
		return nil, nil, err
	}
	c.db = db
	return cfg, scope, nil
}

// start is parse then open, for commands with nothing to check in between.
func (c *tenantCmd) start(ctx context.Context, args []string, required ...string) (*config.Config, *store.Scope, error) {
	if _, err := c.parse(args, required...); err != nil {
		return nil, nil, err
	}
	return c.open(ctx)
}

func (c *tenantCmd) close() {
	if c.db != nil {
		c.db.Close()
	}
}
