// Command blackbox is the Blackbox SIP recording gateway: `serve` runs it;
// the other subcommands provision and inspect the store it reads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand; words like "tenant add" are its path.
type command struct {
	path  string
	usage string
	run   func(ctx context.Context, env *cli, args []string) error
}

// cli carries what subcommands write to and read from, so tests drive them
// in-process with their own streams.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// errUsage marks an error whose message is a usage hint.
var errUsage = errors.New("usage")

func commands() []command {
	return []command{
		{"serve", "serve --config FILE", runServe},
		{"migrate", "migrate --config FILE", runMigrate},
		{"keygen", "keygen", runKeygen},
		{"secrets rotate", "secrets rotate --config FILE  (keys: the new one first, then the old ones)", runSecretsRotate},
		{"tenant add", "tenant add NAME [--default-country US] --config FILE", runTenantAdd},
		{"tenant list", "tenant list --config FILE", runTenantList},
		{"user add", "user add --tenant NAME --username U --role rep|manager|owner [--caller-id +E164] --config FILE  (password on stdin)", runUserAdd},
		{"user list", "user list --tenant NAME --config FILE", runUserList},
		{"user passwd", "user passwd --tenant NAME --username U --config FILE  (password on stdin)", runUserPasswd},
		{"trunk add", "trunk add --tenant NAME --name T --address HOST:PORT [--transport udp|tcp] [--username U --password-stdin] [--inbound-from CIDR,...] --config FILE", runTrunkAdd},
		{"trunk list", "trunk list --tenant NAME --config FILE", runTrunkList},
		{"number add", "number add --tenant NAME --number +E164 --user U --config FILE", runNumberAdd},
		{"number list", "number list --tenant NAME --config FILE", runNumberList},
		{"calls list", "calls list --tenant NAME [--json] [--limit N] --config FILE", runCallsList},
		{"recordings list", "recordings list --tenant NAME [--json] [--failed] [--call ID] --config FILE", runRecordingsList},
		{"verify", "verify --tenant NAME (--call ID | --all) --config FILE", runVerify},
		{"policy check", "policy check FILE", runPolicyCheck},
		{"suspension list", "suspension list --tenant NAME [--user U] [--all] [--json] --config FILE", runSuspensionList},
		{"suspension lift", "suspension lift --tenant NAME [--user U] --config FILE", runSuspensionLift},
		{"audit list", "audit list --tenant NAME [--json] [--action A] --config FILE", runAuditList},
		{"token create", "token create --tenant NAME --user U [--name LABEL] [--ttl 720h] --config FILE  (prints the token once)", runTokenCreate},
		{"token revoke", "token revoke --tenant NAME --id ID --config FILE", runTokenRevoke},
		{"token list", "token list --tenant NAME [--user U] --config FILE", runTokenList},
		{"jobs list", "jobs list [--dead] [--json] [--kind K] [--limit N] --config FILE", runJobsList},
		{"jobs retry", "jobs retry ID --config FILE", runJobsRetry},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(run(ctx, env, os.Args[1:]))
}

// run dispatches args to a subcommand and returns the exit status.
func run(ctx context.Context, env *cli, args []string) int {
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return len(cmds[i].path) > len(cmds[j].path) })
	for _, c := range cmds {
		words := strings.Fields(c.path)
		if len(args) < len(words) || strings.Join(args[:len(words)], " ") != c.path {
			continue
		}
		err := c.run(ctx, env, args[len(words):])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
			fmt.Fprintf(env.stderr, "blackbox %s\nusage: blackbox %s\n", err, c.usage)
			return 2
		default:
			fmt.Fprintf(env.stderr, "blackbox %s: %v\n", c.path, err)
			return 1
		}
	}
	fmt.Fprintln(env.stderr, "usage: blackbox COMMAND [flags]\n\ncommands:")
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].path < cmds[j].path })
	for _, c := range cmds {
		fmt.Fprintf(env.stderr, "  %s\n", c.usage)
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		return 0
	}
	return 2
}

// parseArgs parses flags wherever they stand among positional arguments
// ("tenant add acme --default-country US" as well as flags first).
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
