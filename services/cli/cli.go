// Package cli is the command line of the mimamori binary: it parses
// flags and MIMAMORI_* variables into a config.Config and runs one
// subcommand. main only wires signals and the exit code.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/mimamori/mimamori/services/config"
)

// Version is set at build time with -ldflags "-X …/cli.Version=…".
var Version = "dev"

type command struct {
	name, usage, help string
	run               func(ctx context.Context, env *env, args []string) error
}

// env is what a command gets: configuration, output and logger.
type env struct {
	cfg    config.Config
	out    io.Writer
	errOut io.Writer
	log    *slog.Logger
	flags  *flag.FlagSet
	getenv func(string) string
}

func commands() []command {
	return []command{
		{"run", "run", "run the whole platform in one process on embedded defaults (or the configured clusters)", cmdRun},
		{"demo", "demo [--devices N]", "run, plus demo customers and simulated appliances sending live data", cmdDemo},
		{"serve", "serve ingest|projector|portal|watchdog|notifier", "run one service against external Kafka and ClickHouse (scale-out)", cmdServe},
		{"migrate", "migrate", "apply the ClickHouse migrations to the configured database", cmdMigrate},
		{"replay", "replay [--keep]", "rebuild every projection from offset 0 into a fresh database and compare it with the live one", cmdReplay},
		{"config", "config", "print the effective configuration (secrets masked)", cmdConfig},
		{"customer", "customer register --name N --email E [--reseller R]", "register a customer (prints JSON)", cmdCustomer},
		{"device", "device register --customer C --serial S --mac M --model X --manufactured YYYY-MM-DD | device credential --device D | device revoke --device D --credential C | device reboot --device D [--reason R]", "register an appliance and print its credential as JSON, issue it another credential, revoke a credential, or ask an appliance to reboot", cmdDevice},
		{"simulate", "simulate --devices N [--customer C] [--devices-file F]", "run N virtual appliances through the real uplink protocol", cmdSimulate},
		{"defs", "defs keygen [--out NAME] | defs build --domains F --ips F --urls F --hashes F --key K… [--trust PUB…] [--expires 30d] --out BUNDLE [--version N] | defs inspect [--pub KEY…] BUNDLE | defs publish --pub KEY… BUNDLE", "make, sign, check and publish appliance definition bundles", cmdDefs},
		{"agent", "agent (--read FILE… [--speed fast|recorded] | --interface IF) --zone lan=CIDR,… --defs-pub KEY… [--defs BUNDLE] (--out FILE|- | --cloud URL --credential-file F --queue-dir DIR [--ca-file F])", "the appliance agent: inspect traffic, write alerts as JSON lines or send them to the cloud", cmdAgent},
		{"notice", "notice fault --level A|B|Z --summary S [--customers C,…|*] [--details D] | notice maintenance --starts T --ends T --summary S [--customers …] [--force] | notice firmware --version V --summary S [--available T] [--customers …]", "publish a fault notice, a planned maintenance announcement (customers are mailed) or a firmware-update notice (portal only)", cmdNotice},
		{"account", "account request --customer C [--role customer_admin|operator] | account unlock --customer C --account A | account list [--customer C]", "ask for one more portal account (credentials go to the customer's mail), lift a lock, or list accounts (no secrets)", cmdAccount},
		{"notify", "notify settings --customer C [--severities 3,2] [--language ja|en] [--webhook-url U] [--secret-version N]", "set a customer's notification settings (prints the webhook secret)", cmdNotify},
		{"version", "version", "print the version", func(_ context.Context, e *env, _ []string) error { fmt.Fprintln(e.out, Version); return nil }},
	}
}

// usageError is a mistake on the command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// ExitCode maps an error to the process exit code.
func ExitCode(err error) int {
	var u usageError
	if errors.As(err, &u) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "mimamori %s: managed cybersecurity watch service\n\nUsage: mimamori <command> [flags]\n\nCommands:\n", Version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.help)
	}
	fmt.Fprintln(w, "\nEvery command accepts the settings below as flags; each also reads a MIMAMORI_* variable.\nRun `mimamori <command> --help` for its flags, `mimamori config` for the effective values.")
}

// Main runs the command named by args[0].
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return usageError{"no command given"}
		}
		return nil
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		fs := flag.NewFlagSet("mimamori "+c.name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		config.Register(fs)
		e := &env{out: stdout, errOut: stderr, flags: fs, getenv: getenv}
		fs.Usage = func() {
			fmt.Fprintf(stderr, "Usage: mimamori %s\n\n%s\n\nFlags:\n", c.usage, c.help)
			fs.PrintDefaults()
		}
		return c.run(ctx, e, args[1:])
	}
	usage(stderr)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

// parse parses the flags of a command (its own ones added to e.flags
// beforehand) and loads the configuration.
func (e *env) parse(args []string) ([]string, error) {
	if err := e.flags.Parse(args); err != nil {
		return nil, err
	}
	cfg, err := config.Load(e.flags, e.getenv)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	e.cfg = cfg
	e.log = newLogger(cfg, e.errOut)
	return e.flags.Args(), nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdConfig(_ context.Context, e *env, args []string) error {
	if _, err := e.parse(args); err != nil {
		return err
	}
	e.cfg.Print(e.out)
	return nil
}
