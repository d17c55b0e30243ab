package cli_test

import (
	"context"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/cli"
	"github.com/mimamori/mimamori/services/registry"
)

// actorCluster is a broker, SASL or not, with the topics, a producer on
// it, and the environment of a command that reaches it.
func actorCluster(t *testing.T, sasl bool) (eventlog.Config, *eventlog.Producer, map[string]string) {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(1)}
	if sasl {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "ops-alice", "alice's kafka password"))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	kcfg := eventlog.Config{Brokers: c.ListenAddrs(), Partitions: 1, Replication: 1}
	env := map[string]string{"MIMAMORI_KAFKA_BROKERS": c.ListenAddrs()[0], "MIMAMORI_KAFKA_PARTITIONS": "1",
		"MIMAMORI_DATA_DIR": t.TempDir(), "MIMAMORI_LOG_LEVEL": "warn"}
	if sasl {
		kcfg.SASLMechanism, kcfg.SASLUser, kcfg.SASLPassword = "SCRAM-SHA-256", "ops-alice", "alice's kafka password"
		env["MIMAMORI_KAFKA_SASL_MECHANISM"], env["MIMAMORI_KAFKA_SASL_USER"] = "SCRAM-SHA-256", "ops-alice"
		env["MIMAMORI_KAFKA_SASL_PASSWORD"] = "alice's kafka password"
	}
	prod, err := eventlog.NewProducer(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, prod.Client(), kcfg); err != nil {
		t.Fatal(err)
	}
	return kcfg, prod, env
}

// actors are the actors the events of the accounts and devices topics
// record, by type: requested_by and unlocked_by, in log order.
func actors(t *testing.T, kcfg eventlog.Config) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []string
	if err := eventlog.ReadToEnd(ctx, kcfg, []string{kcfg.Topic(events.TopicAccounts), kcfg.Topic(events.TopicDevices)}, nil,
		func(_ *kgo.Record, e events.Envelope) {
			p, err := events.Decode(e)
			if err != nil {
				t.Error(err)
				return
			}
			switch v := p.(type) {
			case *events.AccountRequested:
				out = append(out, "requested "+v.RequestedBy)
			case *events.AccountUnlocked:
				out = append(out, "unlocked "+v.UnlockedBy)
			case *events.DeviceRebootRequested:
				out = append(out, "reboot "+v.RequestedBy)
			}
		}); err != nil {
		t.Fatal(err)
	}
	return out
}

// The operator commands record who ran them as the system authenticated
// them, never free text: the Kafka SASL user when the command
// authenticates with SASL, else the OS account of the process's uid on
// this host. --by with anything else is refused, and nothing is written.
func TestOperatorCommandsRecordTheAuthenticatedActor(t *testing.T) {
	ctx := context.Background()
	run := func(env map[string]string, args ...string) (string, error) {
		t.Helper()
		return mimamori(t, ctx, env, args...)
	}
	device := registry.DevicePrefix + ksuid.New().String()

	kcfg, prod, env := actorCluster(t, true)
	cust, err := registry.RegisterCustomer(ctx, prod, "Kato Bakery", "owner@kato.example", "rs_1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"account", "request", "--customer", cust},
		{"account", "unlock", "--customer", cust, "--account", "ac_locked"},
		{"device", "reboot", "--device", device},
		{"account", "unlock", "--customer", cust, "--account", "ac_locked", "--by", "cli:sasl:ops-alice"}, // the same: accepted
	} {
		if out, err := run(env, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	const alice = "cli:sasl:ops-alice"
	// Two topics (accounts, devices): their events are read in no fixed
	// order relative to each other.
	want := []string{"reboot " + alice, "requested " + alice, "unlocked " + alice, "unlocked " + alice}
	if got := slices.Sorted(slices.Values(actors(t, kcfg))); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("recorded actors %q, want %q", got, want)
	}
	for _, args := range [][]string{
		{"account", "request", "--customer", cust, "--by", "the boss"},
		{"account", "unlock", "--customer", cust, "--account", "ac_locked", "--by", "ops@mimamori"},
		{"device", "reboot", "--device", device, "--by", "ops@mimamori"},
	} {
		out, err := run(env, args...)
		if err == nil || cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), alice) || !strings.Contains(err.Error(), "nothing was written") {
			t.Errorf("%v: %v (exit %d)\n%s\nwant a usage error naming %s", args, err, cli.ExitCode(err), out, alice)
		}
	}
	if got := actors(t, kcfg); len(got) != len(want) {
		t.Fatalf("the refused commands wrote: %q", got[len(want):])
	}

	// Without SASL: the OS account of this process.
	kcfg, _, env = actorCluster(t, false)
	u, err := user.LookupId(strconv.Itoa(os.Getuid()))
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(env, "account", "unlock", "--customer", cust, "--account", "ac_locked"); err != nil {
		t.Fatalf("unlock: %v\n%s", err, out)
	}
	if got, want := actors(t, kcfg), "unlocked cli:os:"+u.Username+"@"+host; len(got) != 1 || got[0] != want {
		t.Fatalf("recorded %q, want %q", got, want)
	}
}

// `mimamori account request --role operator` for another customer than
// the operator's own organisation (the customer of the operator accounts
// issued) is refused with the reason, and nothing is written; for that
// organisation it is accepted.
func TestAccountRequestKeepsTheOperatorRoleInTheOperatorsOrganisation(t *testing.T) {
	ctx := context.Background()
	kcfg, prod, env := actorCluster(t, false)
	var custs []string
	for _, email := range []string{"ops@mimamori.example", "owner@kato.example"} {
		id, err := registry.RegisterCustomer(ctx, prod, "Company", email, "rs_1", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		custs = append(custs, id)
	}
	ops, other := custs[0], custs[1]
	// The accounts owner issued the first operator account to ops.
	issued, err := events.New("mimamori/accounts", &events.AccountIssued{CustomerID: ops, AccountID: "ac_first_operator", LoginID: "t123456789",
		Role: events.RoleOperator, PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", ExpiresAt: time.Now().Add(time.Hour),
		Reason: "request", RequestID: "rq_first", IssuedAt: time.Now()}, time.Now())
	if err == nil {
		err = prod.Publish(ctx, issued)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := mimamori(t, ctx, env, "account", "request", "--customer", other, "--role", "operator")
	if err == nil || !strings.Contains(err.Error(), "operator's own organisation") || !strings.Contains(err.Error(), ops) ||
		!strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("operator role for %s: %v\n%s\nwant a refusal naming %s", other, err, out, ops)
	}
	if out, err := mimamori(t, ctx, env, "account", "request", "--customer", "cu_nobody"); err == nil ||
		!strings.Contains(err.Error(), "no such customer") {
		t.Fatalf("an unknown customer: %v\n%s", err, out)
	}
	if got := actors(t, kcfg); len(got) != 0 {
		t.Fatalf("the refused requests wrote %q", got)
	}
	if out, err := mimamori(t, ctx, env, "account", "request", "--customer", ops, "--role", "operator"); err != nil {
		t.Fatalf("operator role for the operator's organisation: %v\n%s", err, out)
	}
	if got := actors(t, kcfg); len(got) != 1 {
		t.Fatalf("requests written: %q, want one", got)
	}
}
