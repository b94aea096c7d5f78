package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/secrets"
)

// storeFlags are the flags every store command shares.
type storeFlags struct {
	config string
	tenant string
}

func (f *storeFlags) register(fs *flag.FlagSet, withTenant bool) {
	fs.StringVar(&f.config, "config", "configs/dev.yaml", "configuration file (finds the store)")
	if withTenant {
		fs.StringVar(&f.tenant, "tenant", "", "tenant name")
	}
}

// openStore loads the configuration and opens its store. The keyring is
// loaded when present; commands that seal or open secrets fail clearly
// without one.
func openStore(ctx context.Context, path string) (*config.Config, *store.DB, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	kr, _, err := secrets.Load(cfg.Secrets.KeyFile, cfg.Dev)
	if err != nil && !errors.Is(err, secrets.ErrNoKey) {
		return nil, nil, err
	}
	db, err := store.Open(ctx, cfg.Store.DSN, store.Options{Keyring: kr})
	if err != nil {
		return nil, nil, err
	}
	return cfg, db, nil
}

// adminScope opens the store and the named tenant's scope.
func adminScope(ctx context.Context, f storeFlags) (*config.Config, *store.DB, *store.Scope, error) {
	cfg, db, err := openStore(ctx, f.config)
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := db.AdminScope(ctx, f.tenant)
	if err != nil {
		db.Close()
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, nil, fmt.Errorf("no tenant named %q (blackbox tenant list)", f.tenant)
		}
		return nil, nil, nil, err
	}
	return cfg, db, db.In(p), nil
}

// readSecret reads one secret line from stdin; secrets never travel in argv,
// where other users of the host can read them.
func readSecret(r io.Reader, what string) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read %s from stdin: %w", what, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("%w: the %s is read from stdin, e.g. `printf '%%s\\n' \"$PASS\" | blackbox ...`", errUsage, what)
	}
	return line, nil
}

func runTenantAdd(ctx context.Context, env *cli, args []string) error {
	fs := flag.NewFlagSet("tenant add", flag.ContinueOnError)
	var f storeFlags
	f.register(fs, false)
	country := fs.String("default-country", "US", "ISO 3166 country for national numbers")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one tenant NAME", errUsage)
	}
	_, db, err := openStore(ctx, f.config)
	if err != nil {
		return err
	}
	defer db.Close()
	t, err := db.CreateTenant(ctx, pos[0], *country)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "tenant %s created (id %s, default country %s)\n", t.Name, t.ID, t.DefaultCountry)
	return nil
}

func runTenantList(ctx context.Context, env *cli, args []string) error {
	fs := flag.NewFlagSet("tenant list", flag.ContinueOnError)
	var f storeFlags
	f.register(fs, false)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	_, db, err := openStore(ctx, f.config)
	if err != nil {
		return err
	}
	defer db.Close()
	ts, err := db.Tenants(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tID\tCOUNTRY")
	for _, t := range ts {
		fmt.Fprintf(w, "%s\t%s\t%s\n", t.Name, t.ID, t.DefaultCountry)
	}
	return w.Flush()
}

func runUserAdd(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("user add")
	username := c.String("username", "", "SIP username (unique across the gateway)")
	role := c.String("role", "rep", "rep, manager or owner")
	callerID := c.String("caller-id", "", "default caller ID, E.164")
	if _, err := c.parse(args, "username"); err != nil {
		return err
	}
	r, err := store.ParseRole(*role)
	if err != nil {
		return err
	}
	password, err := readSecret(env.stdin, "SIP password")
	if err != nil {
		return err
	}
	cfg, scope, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	cid, err := normaliseNumber(ctx, scope, *callerID)
	if err != nil {
		return err
	}
	u, err := scope.CreateUser(ctx, store.NewUser{Username: *username, Role: r, CallerID: cid, Realm: cfg.SIP.Realm, Password: password})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "user %s created in tenant %s (id %s, role %s", u.Username, c.tenant, u.ID, u.Role)
	if u.CallerID != "" {
		fmt.Fprintf(env.stdout, ", caller id %s", u.CallerID)
	}
	fmt.Fprintf(env.stdout, "); SIP realm %q\n", cfg.SIP.Realm)
	return nil
}

func runUserPasswd(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("user passwd")
	username := c.String("username", "", "SIP username")
	if _, err := c.parse(args, "username"); err != nil {
		return err
	}
	password, err := readSecret(env.stdin, "SIP password")
	if err != nil {
		return err
	}
	cfg, scope, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	if err := scope.SetPassword(ctx, *username, cfg.SIP.Realm, password); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "password of %s changed\n", *username)
	return nil
}

func runUserList(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("user list")
	_, scope, err := c.start(ctx, args)
	if err != nil {
		return err
	}
	defer c.close()
	us, err := scope.Users(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "USERNAME\tROLE\tCALLER ID\tID")
	for _, u := range us {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", u.Username, u.Role, u.CallerID, u.ID)
	}
	return w.Flush()
}

func runTrunkAdd(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("trunk add")
	name := c.String("name", "", "trunk name")
	address := c.String("address", "", "carrier HOST:PORT")
	transport := c.String("transport", "udp", "udp or tcp")
	username := c.String("username", "", "digest username toward the carrier")
	pwStdin := c.Bool("password-stdin", false, "read the carrier password from stdin")
	inbound := c.String("inbound-from", "", "carrier source CIDRs allowed to send inbound calls, comma separated")
	if _, err := c.parse(args, "name", "address"); err != nil {
		return err
	}
	if (*username != "") != *pwStdin {
		return fmt.Errorf("%w: --username and --password-stdin go together", errUsage)
	}
	var password string
	if *pwStdin {
		var err error
		if password, err = readSecret(env.stdin, "trunk password"); err != nil {
			return err
		}
	}
	cidrs, err := store.ParseCIDRs(*inbound)
	if err != nil {
		return err
	}
	_, scope, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	t, err := scope.CreateTrunk(ctx, store.NewTrunk{Name: *name, Address: *address, Transport: *transport,
		Username: *username, Password: password, InboundFrom: cidrs})
	if err != nil {
		if errors.Is(err, secrets.ErrNoKey) {
			return fmt.Errorf("%w (trunk passwords are stored Fernet-encrypted)", err)
		}
		return err
	}
	fmt.Fprintf(env.stdout, "trunk %s created in tenant %s (id %s, %s via %s", t.Name, c.tenant, t.ID, t.Address, t.Transport)
	if t.Username != "" {
		fmt.Fprintf(env.stdout, ", digest user %s, password sealed", t.Username)
	}
	if len(t.InboundFrom) > 0 {
		fmt.Fprintf(env.stdout, ", inbound from %s", *inbound)
	}
	fmt.Fprintln(env.stdout, ")")
	return nil
}

func runTrunkList(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("trunk list")
	_, scope, err := c.start(ctx, args)
	if err != nil {
		return err
	}
	defer c.close()
	ts, err := scope.Trunks(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tADDRESS\tTRANSPORT\tUSERNAME\tINBOUND FROM")
	for _, t := range ts {
		cidrs := make([]string, len(t.InboundFrom))
		for i, p := range t.InboundFrom {
			cidrs[i] = p.String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Address, t.Transport, t.Username, strings.Join(cidrs, ","))
	}
	return w.Flush()
}

func runNumberAdd(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("number add")
	number := c.String("number", "", "the DID, E.164")
	user := c.String("user", "", "username the DID rings")
	_, scope, err := c.start(ctx, args, "number", "user")
	if err != nil {
		return err
	}
	defer c.close()
	e164, err := normaliseNumber(ctx, scope, *number)
	if err != nil {
		return err
	}
	n, err := scope.AddNumber(ctx, e164, *user)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "number %s added to tenant %s: rings %s and may be presented by %s\n", n.Number, c.tenant, n.Username, n.Username)
	return nil
}

func runNumberList(ctx context.Context, env *cli, args []string) error {
	c := newTenantCmd("number list")
	_, scope, err := c.start(ctx, args)
	if err != nil {
		return err
	}
	defer c.close()
	ns, err := scope.Numbers(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NUMBER\tUSER")
	for _, n := range ns {
		fmt.Fprintf(w, "%s\t%s\n", n.Number, n.Username)
	}
	return w.Flush()
}

// normaliseNumber turns what an operator typed into E.164 using the
// tenant's default country; "" stays "".
func normaliseNumber(ctx context.Context, scope *store.Scope, raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	t, err := scope.Tenant(ctx)
	if err != nil {
		return "", err
	}
	d, err := policy.ParseDestination(raw, t.DefaultCountry)
	if err != nil {
		return "", err
	}
	if d.Emergency {
		return "", fmt.Errorf("%s is an emergency number", raw)
	}
	return d.E164, nil
}

func runMigrate(ctx context.Context, env *cli, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var f storeFlags
	f.register(fs, false)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	_, db, err := openStore(ctx, f.config)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.SchemaVersion()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s store migrated to schema version %d\n", db.Backend(), v)
	return nil
}

func runKeygen(ctx context.Context, env *cli, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: keygen takes no arguments", errUsage)
	}
	k, err := secrets.Generate()
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, k)
	return nil
}
