package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/secrets"
)

// runSecretsRotate re-encrypts every sealed secret under the first Fernet
// key. Key rotation: put the new key first (BLACKBOX_FERNET_KEYS or the key
// file) on every node, run this, then drop the old key.
func runSecretsRotate(ctx context.Context, env *cli, args []string) error {
	fs := flag.NewFlagSet("secrets rotate", flag.ContinueOnError)
	var f storeFlags
	f.register(fs, false)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: secrets rotate takes no arguments", errUsage)
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		return err
	}
	// Never generate a key here: a fresh key opens none of the secrets.
	kr, _, err := secrets.Load(cfg.Secrets.KeyFile, false)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	db, err := store.Open(ctx, cfg.Store.DSN, store.Options{Keyring: kr})
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.RotateSecrets(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "resealed %d secrets under the first key (%d already under it) in %d tenants\n",
		res.Resealed, res.Current, res.Tenants)
	if kr.Len() > 1 {
		fmt.Fprintln(env.stdout, "every secret now opens with the first key alone: once every node runs with it first, older keys may be removed")
	}
	return nil
}
