// Package cli is the command line of the mimamori binary: its commands,
// declared as kong structs, each with its own flags and the groups of
// settings it reads (docs/cli.md says why kong).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/mimamori/mimamori/appliance/agent"
	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/appliance/inspect"
	"github.com/mimamori/mimamori/appliance/queue"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
)

// Version is set at build time with -ldflags "-X …/cli.Version=…".
var Version = "dev"

// env is what a command gets: configuration, output and logger.
type env struct {
	cfg    config.Config
	out    io.Writer
	errOut io.Writer
	log    *slog.Logger
}

// runner is a command that can be run: a leaf of the command tree.
type runner interface {
	run(ctx context.Context, e *env) error
}

// reader is a command that reads settings: the groups it is given.
type reader interface {
	groups() []config.Group
}

// parent is a command that only groups subcommands; missing says what to
// name when none is given.
type parent interface {
	missing() string
}

// Settings holds the flags of the settings a command reads: embedded in
// a command that has groups, it is given their flags by plugSettings
// (exported, so that kong may fill the embedded field).
type Settings struct {
	Flags kong.Plugins `embed:""`
}

// root is the command tree of the mimamori binary.
type root struct {
	Run      runCmd      `cmd:"" help:"run the whole platform in one process on embedded defaults (or the configured clusters)"`
	Demo     demoCmd     `cmd:"" help:"run, plus demo customers and simulated appliances sending live data"`
	Serve    serveCmd    `cmd:"" help:"run one service against external Kafka and ClickHouse (scale-out)"`
	Migrate  migrateCmd  `cmd:"" help:"apply the ClickHouse migrations to the configured database"`
	Replay   replayCmd   `cmd:"" help:"rebuild every projection from offset 0 into a fresh database and compare it with the live one"`
	Config   configCmd   `cmd:"" help:"print the effective configuration (secrets masked)"`
	Customer customerCmd `cmd:"" help:"register a customer (prints JSON)"`
	Device   deviceCmd   `cmd:"" help:"register an appliance and print its credential as JSON, issue it another credential, revoke a credential, or ask an appliance to reboot"`
	Simulate simulateCmd `cmd:"" help:"run N virtual appliances through the real uplink protocol"`
	Defs     defsCmd     `cmd:"" help:"make, sign, check and publish appliance definition bundles"`
	Agent    agentCmd    `cmd:"" help:"the appliance agent: inspect traffic, write alerts as JSON lines or send them to the cloud"`
	Notice   noticeCmd   `cmd:"" help:"publish a fault notice, a planned maintenance announcement (customers are mailed) or a firmware-update notice (portal only)"`
	Account  accountCmd  `cmd:"" help:"ask for one more portal account (credentials go to the customer's mail), lift a lock, or list accounts (no secrets)"`
	Notify   notifyCmd   `cmd:"" help:"set a customer's notification settings (prints the webhook secret)"`
	Version  versionCmd  `cmd:"" help:"print the version"`
}

type versionCmd struct{}

func (versionCmd) run(_ context.Context, e *env) error { fmt.Fprintln(e.out, Version); return nil }

type configCmd struct{ Settings }

func (configCmd) groups() []config.Group { return config.AllGroups() }
func (configCmd) run(_ context.Context, e *env) error {
	e.cfg.Print(e.out)
	return nil
}

// kafkaGroups are the settings of the commands that publish to or read
// the log (the embedded broker's address is in the data folder).
func kafkaGroups() []config.Group { return []config.Group{config.Data, config.Kafka, config.Log} }

// attachGroups are the settings of the commands that attach to Kafka and
// ClickHouse.
func attachGroups() []config.Group {
	return []config.Group{config.Data, config.Kafka, config.ClickHouse, config.Log}
}

func logGroups() []config.Group { return []config.Group{config.Log} }

// defaultVars are the defaults of command flags that live in other
// packages, for their default:"${…}" tags.
func defaultVars() kong.Vars {
	return kong.Vars{
		"queue_max_bytes": strconv.FormatInt(queue.DefaultMaxBytes, 10),
		"fold_window":     inspect.DefaultFoldWindow.String(),
		"heartbeat_every": agent.DefaultHeartbeatEvery.String(),
		"defs_poll_every": agent.DefaultPollEvery.String(),
		"portscan_ports":  strconv.Itoa(defs.DefaultPortScan.Ports),
		"portscan_window": defs.DefaultPortScan.Window.String(),
		"lang_default":    events.LangJapanese,
		"role_default":    events.RoleCustomerAdmin,
	}
}

// usageError is a mistake on the command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// ExitCode maps an error to the process exit code.
func ExitCode(err error) int {
	var u usageError
	if errors.Is(err, flag.ErrHelp) || errors.As(err, &u) {
		return 2
	}
	return 1
}

// settingValue is the flag of one setting: kong keeps the text given on
// the command line, and config.LoadGroups parses and checks it once, with
// the variable and the default (kong's env and default tags only show them
// in the help: the variables are read through the getenv given to Main).
type settingValue struct{ v string }

func (s *settingValue) Decode(ctx *kong.DecodeContext) error {
	t, err := ctx.Scan.PopValue("value")
	if err != nil {
		return err
	}
	s.v = fmt.Sprint(t.Value)
	return nil
}

// settingsStruct is a struct, made at run time from config's table, with
// one flag field per setting of groups: the settings are defined once,
// in config, and kong sees them as the command's own flags.
func settingsStruct(groups []config.Group) any {
	flags := config.Flags(groups...)
	fields := make([]reflect.StructField, 0, len(flags))
	for i, f := range flags {
		help := f.Help
		if f.Default != "" {
			help += fmt.Sprintf(" (default %q)", f.Default)
		}
		tag := fmt.Sprintf(`name:%s help:%s group:%s env:%s default:%s placeholder:%s`, strconv.Quote(f.Name), strconv.Quote(help),
			strconv.Quote(string(f.Group)+" settings"), strconv.Quote(f.Env), strconv.Quote(f.Default),
			strconv.Quote(strings.TrimPrefix(f.Env, "MIMAMORI_")))
		fields = append(fields, reflect.StructField{Name: "S" + strconv.Itoa(i), Type: reflect.TypeFor[settingValue](),
			Tag: reflect.StructTag(tag)})
	}
	return reflect.New(reflect.StructOf(fields)).Interface()
}

// plugSettings gives every command that reads settings the flags of its
// groups.
func plugSettings(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Struct || !f.CanAddr() || !f.CanInterface() {
			continue
		}
		if r, ok := f.Addr().Interface().(reader); ok {
			if s := f.FieldByName("Settings"); s.IsValid() && s.Kind() == reflect.Struct {
				s.FieldByName("Flags").Set(reflect.ValueOf(kong.Plugins{settingsStruct(r.groups())}))
			}
		}
		plugSettings(f)
	}
}

// helpRequested ends a parse at --help.
type helpRequested struct{}

func newParser(cli *root, helpOut io.Writer) (*kong.Kong, error) {
	plugSettings(reflect.ValueOf(cli).Elem())
	return kong.New(cli,
		kong.Name("mimamori"),
		kong.Description(fmt.Sprintf("mimamori %s: managed cybersecurity watch service.\n\n"+
			"Each command accepts the settings it reads as flags; each also reads a MIMAMORI_* variable. "+
			"Run `mimamori <command> --help` for its flags, `mimamori config` for the effective values.", Version)),
		kong.Writers(helpOut, helpOut),
		kong.Exit(func(int) { panic(helpRequested{}) }),
		kong.WithHyphenPrefixedParameters(true),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
		kong.Vars(defaultVars()),
		// --help works everywhere and goes without saying: a command's
		// help lists only what is its own.
		kong.PostBuild(func(k *kong.Kong) error {
			for _, f := range k.Model.Flags {
				if f.Name == "help" {
					f.Hidden = true
				}
			}
			return nil
		}),
	)
}

// parse parses args, turning --help (kong's exit) into flag.ErrHelp.
func parse(k *kong.Kong, args []string) (kctx *kong.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(helpRequested); !ok {
				panic(r)
			}
			kctx, err = nil, flag.ErrHelp
		}
	}()
	return k.Parse(args)
}

// Main runs the command named by args.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if err := usage(stdout); err != nil {
			return err
		}
		if len(args) == 0 {
			return usageError{"no command given"}
		}
		return nil
	}
	cli := &root{}
	k, err := newParser(cli, stderr)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(args[0], "-") && !isCommand(k, args[0]) {
		_ = usage(stderr)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	kctx, err := parse(k, args)
	if err != nil {
		var pe *kong.ParseError
		if errors.As(err, &pe) {
			if p, ok := selectedParent(pe.Context); ok {
				_ = pe.Context.PrintUsage(false)
				return usageError{fmt.Sprintf("%s (%v)", p.missing(), err)}
			}
			return usageError{err.Error()}
		}
		return err
	}
	// kong only returns a parse that selected a leaf, and every leaf is a
	// runner (TestCommandTree).
	target := kctx.Selected().Target.Addr().Interface()
	e := &env{out: stdout, errOut: stderr}
	if r, ok := target.(reader); ok {
		flags := map[string]string{}
		for _, p := range kctx.Path {
			if p.Flag == nil {
				continue
			}
			if sv, ok := p.Flag.Target.Addr().Interface().(*settingValue); ok {
				flags[p.Flag.Name] = sv.v
			}
		}
		if e.cfg, err = config.LoadGroups(r.groups(), flags, getenv); err != nil {
			return usageError{err.Error()}
		}
	}
	e.log = newLogger(e.cfg, stderr)
	return target.(runner).run(ctx, e)
}

// usage prints the list of commands.
func usage(w io.Writer) error {
	k, err := newParser(&root{}, w)
	if err != nil {
		return err
	}
	_, err = parse(k, []string{"--help"})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func isCommand(k *kong.Kong, name string) bool {
	for _, c := range k.Model.Children {
		if c.Name == name {
			return true
		}
	}
	return false
}

// selectedParent is the command that groups subcommands where parsing
// stopped for want of one.
func selectedParent(kctx *kong.Context) (parent, bool) {
	if kctx == nil {
		return nil, false
	}
	var last *kong.Node
	for _, p := range kctx.Path {
		if p.Command != nil {
			last = p.Command
		}
	}
	if last == nil || len(last.Children) == 0 || !last.Target.CanAddr() {
		return nil, false
	}
	p, ok := last.Target.Addr().Interface().(parent)
	return p, ok
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
