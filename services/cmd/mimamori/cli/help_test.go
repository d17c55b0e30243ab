package cli_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimamori/mimamori/services/cmd/mimamori/cli"
)

// A command's help lists its own flags and the settings of the groups it
// reads, no others.
func TestHelpListsOnlyWhatTheCommandReads(t *testing.T) {
	cases := []struct {
		args       []string
		want, not  []string
		wantNoFlag bool
	}{
		{args: []string{"agent", "--help"},
			want: []string{"Usage: mimamori agent", "--read=FILE", "--zone=", "--defs-pub=KEY", "--cloud=", "--queue-max-bytes=268435456",
				"--fold-window=1m0s", "Log settings", "--log-level=LOG_LEVEL", `(default "info")`, "$MIMAMORI_LOG_LEVEL"},
			not: []string{"kafka", "Kafka", "clickhouse", "ClickHouse", "smtp", "data-dir", "--help"}},
		{args: []string{"version", "--help"}, want: []string{"Usage: mimamori version", "print the version"}, wantNoFlag: true},
		{args: []string{"device", "reboot", "--help"},
			want: []string{"--device=STRING", "--reason=", "--by=", "Kafka settings", "--kafka-brokers=", "--data-dir="},
			not:  []string{"clickhouse", "smtp", "--serial", "--credential="}},
		{args: []string{"serve", "portal", "--help"}, want: []string{"Mail settings", "--smtp-host=SMTP_HOST", "$MIMAMORI_SMTP_HOST"}},
		{args: []string{"defs", "keygen", "--help"}, want: []string{`--out="defs-signing"`}, not: []string{"settings", "MIMAMORI_"}},
	}
	for _, c := range cases {
		out, err := mimamori(t, context.Background(), nil, c.args...)
		if !errors.Is(err, flag.ErrHelp) || cli.ExitCode(err) != 2 {
			t.Errorf("mimamori %v: %v (exit %d), want the help and exit 2 as before", c.args, err, cli.ExitCode(err))
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("mimamori %v lacks %q:\n%s", c.args, w, out)
			}
		}
		for _, n := range c.not {
			if strings.Contains(out, n) {
				t.Errorf("mimamori %v shows %q:\n%s", c.args, n, out)
			}
		}
		if c.wantNoFlag && strings.Contains(out, "-") {
			t.Errorf("mimamori %v shows flags:\n%s", c.args, out)
		}
	}
	out, err := mimamori(t, context.Background(), nil, "--help")
	if err != nil || !strings.Contains(out, "notify      set a customer's notification settings") {
		t.Errorf("mimamori --help: %v\n%s", err, out)
	}
}

// A setting is parsed and checked once, where it is loaded, and a bad
// value names the setting and where it came from.
func TestTypedSettingErrorsNameTheSetting(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"MIMAMORI_KAFKA_PARTITIONS": "six"}, nil, `kafka-partitions (from MIMAMORI_KAFKA_PARTITIONS): want a whole number, got "six"`},
		{map[string]string{"MIMAMORI_WATCHDOG_THRESHOLD": "10"}, nil, `watchdog-threshold (from MIMAMORI_WATCHDOG_THRESHOLD): want a duration like 10ms, got "10"`},
		{map[string]string{"MIMAMORI_KAFKA_TLS": "yes please"}, nil, `kafka-tls (from MIMAMORI_KAFKA_TLS): want true or false, got "yes please"`},
		{nil, []string{"--kafka-linger", "soon"}, `kafka-linger (from --kafka-linger): want a duration like 10ms, got "soon"`},
		{map[string]string{"MIMAMORI_LOG_LEVEL": "loud"}, nil, `log-level (MIMAMORI_LOG_LEVEL) must be debug, info, warn or error, got "loud"`},
		{map[string]string{"MIMAMORI_KAFKA_REPLICATION": "0"}, nil, "kafka-replication (MIMAMORI_KAFKA_REPLICATION) must be at least 1"},
	}
	for _, c := range cases {
		_, err := mimamori(t, context.Background(), c.env, append([]string{"config"}, c.args...)...)
		if err == nil || cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %v %v: %v (exit %d), want a usage error saying %s", c.env, c.args, err, cli.ExitCode(err), c.want)
		}
	}
	// A command checks only the settings it reads: the agent does not
	// care about a broken Kafka setting.
	_, err := mimamori(t, context.Background(), map[string]string{"MIMAMORI_KAFKA_PARTITIONS": "six"}, "agent")
	if err == nil || !strings.Contains(err.Error(), "agent: give --read FILE… or --interface IF") {
		t.Errorf("agent with a bad Kafka setting: %v, want its own usage error", err)
	}
}

// A flag wins over its MIMAMORI_* variable, which wins over the default.
func TestSettingPrecedence(t *testing.T) {
	value := func(out, name string) string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == name {
				return strings.Join(f[2:], " ")
			}
		}
		t.Fatalf("config prints no %s:\n%s", name, out)
		return ""
	}
	env := map[string]string{"MIMAMORI_KAFKA_TOPIC_PREFIX": "from-env", "MIMAMORI_NOTIFY_HOURLY_CAP": "7", "MIMAMORI_KAFKA_LINGER": "5ms"}
	out, err := mimamori(t, context.Background(), env, "config", "--kafka-topic-prefix", "from-flag", "--notify-hourly-cap", "-1")
	if err != nil {
		t.Fatal(err, out)
	}
	for name, want := range map[string]string{
		"kafka-topic-prefix": "from-flag", // flag over variable
		"notify-hourly-cap":  "-1",        // a flag value may start with a hyphen
		"kafka-linger":       "5ms",       // variable over default
		"watchdog-threshold": "10m0s",     // default
		"smtp-from":          "mimamori <noreply@mimamori.local>",
	} {
		if got := value(out, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	out, err = mimamori(t, context.Background(), env, "config", "--kafka-topic-prefix=")
	if err != nil {
		t.Fatal(err, out)
	}
	if got := value(out, "kafka-topic-prefix"); got != "" {
		t.Errorf("an empty flag does not win over the variable: kafka-topic-prefix = %q", got)
	}
}

// Every subcommand is reached through the tree kong parses: each answers
// its own mistakes, and a parent without a subcommand names them.
func TestSubcommandDispatch(t *testing.T) {
	usage := []struct {
		args []string
		want string
	}{
		{[]string{"device"}, "device: want `device register`, `device credential`, `device revoke` or `device reboot`"},
		{[]string{"device", "frobnicate"}, "unexpected argument frobnicate"},
		{[]string{"device", "revoke", "--device", "dv_1"}, "device revoke: --device and --credential are required"},
		{[]string{"device", "credential"}, "device credential: --device is required"},
		{[]string{"device", "reboot"}, "device reboot: --device is required"},
		{[]string{"device", "register", "--device", "dv_1"}, "unknown flag --device"},
		{[]string{"customer"}, "customer: want `customer register`"},
		{[]string{"defs"}, "defs: name a subcommand: keygen, build, inspect or publish"},
		{[]string{"defs", "build", "--out", "x.bundle"}, "defs build: --key and --out are required"},
		{[]string{"defs", "inspect"}, "defs inspect: name one bundle file"},
		{[]string{"defs", "publish", "x.bundle"}, "defs publish: usage: defs publish --pub KEY BUNDLE"},
		{[]string{"notice"}, "notice: want `notice fault`, `notice maintenance` or `notice firmware`"},
		{[]string{"notice", "maintenance", "--summary", "s"}, "notice maintenance: --starts and --ends are required"},
		{[]string{"notice", "fault", "--level", "A"}, "notice: --summary is required"},
		{[]string{"notice", "firmware", "--summary", "s", "--available", "tomorrow"}, `--available: want an RFC 3339 time`},
		{[]string{"account"}, "account: want `account request`, `account unlock` or `account list`"},
		{[]string{"account", "unlock", "--customer", "cu_1"}, "--customer (and --account for unlock) are required"},
		{[]string{"notify"}, "notify: want `notify settings`"},
		{[]string{"notify", "settings"}, "notify settings: --customer is required"},
		{[]string{"serve", "everything"}, "unexpected argument everything"},
		{[]string{"agent", "--read", "a.pcap", "--speed", "slow"}, "agent: --speed is fast or recorded"},
	}
	for _, c := range usage {
		out, err := mimamori(t, context.Background(), nil, c.args...)
		if err == nil || cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("mimamori %v: %v (exit %d), want a usage error containing %q\n%s", c.args, err, cli.ExitCode(err), c.want, out)
		}
	}

	out, err := mimamori(t, context.Background(), nil, "version")
	if err != nil || out != cli.Version+"\n" {
		t.Errorf("version: %q, %v", out, err)
	}
	dir := t.TempDir()
	out, err = mimamori(t, context.Background(), nil, "defs", "keygen", "--out", filepath.Join(dir, "k"))
	if err != nil || !strings.Contains(out, "give the public key to appliances with --defs-pub") {
		t.Fatalf("defs keygen: %v\n%s", err, out)
	}
	for _, f := range []string{"k.key", "k.pub"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("defs keygen wrote no %s: %v", f, err)
		}
	}
	// A failure that is no command-line mistake exits 1.
	if _, err := mimamori(t, context.Background(), nil, "defs", "keygen", "--out", filepath.Join(dir, "k")); err == nil || cli.ExitCode(err) != 1 {
		t.Errorf("defs keygen over an existing key: %v (exit %d), want a failure, exit 1", err, cli.ExitCode(err))
	}
}

// The portal served alone mails temporary credentials and password
// resets, and the embedded mailbox runs only beside the notifier of `run`:
// without a relay it refuses to start, naming the setting.
func TestServePortalNeedsAnSMTPRelay(t *testing.T) {
	out, err := mimamori(t, context.Background(), map[string]string{"MIMAMORI_DATA_DIR": t.TempDir()}, "serve", "portal")
	if err == nil || cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), "MIMAMORI_SMTP_HOST") {
		t.Fatalf("serve portal without a relay: %v (exit %d), want a usage error naming MIMAMORI_SMTP_HOST\n%s", err, cli.ExitCode(err), out)
	}
}
