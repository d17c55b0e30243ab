package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
)

// The retention policy of every mimamori topic: kept forever, never
// compacted. The topics are the record the projections are rebuilt from
// (`mimamori replay`), and a broker's default (seven days on stock Kafka)
// would silently delete it:
//   - the business topics (accounts, devices, contracts, insurance,
//     support, operations, notifications) are the only copy of what
//     happened to an account, a device or a claim;
//   - the appliance topics feed projections that outlive the 90 days of
//     alert evidence: the daily aggregates behind the dashboards and
//     reports keep their counts, so replay needs every alert and heartbeat
//     ever written to rebuild them.
//
// Compaction would keep only the last event of each key (a device's or a
// customer's), which is never what an event log wants.
var topicPolicy = []struct{ key, value, why string }{
	{"retention.ms", "-1", "kept forever"},
	{"retention.bytes", "-1", "no size limit"},
	{"cleanup.policy", "delete", "never compacted"},
}

// EnsureTopics creates every mimamori topic that does not exist yet, with
// the configured partitions and replication factor and the retention
// policy above. It does not change a topic that exists: CheckTopics says
// whether one would lose events.
func EnsureTopics(ctx context.Context, cl *kgo.Client, cfg Config) error {
	configs := make(map[string]*string, len(topicPolicy))
	for _, c := range topicPolicy {
		configs[c.key] = &c.value
	}
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, cfg.Partitions, cfg.Replication, configs, topicNames(cfg)...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// RetentionError lists the topics whose configuration would delete or
// compact events that replay needs, and the command that fixes each.
type RetentionError struct {
	Brokers string
	Topics  []TopicProblem
}

// TopicProblem is one topic's settings that differ from the policy.
type TopicProblem struct {
	Topic string
	Found []string // "retention.ms=604800000 (want -1: kept forever)"
}

func (e *RetentionError) Error() string {
	var b strings.Builder
	b.WriteString("kafka topics would lose events that replay needs (every mimamori topic is kept forever and never compacted):\n")
	for _, t := range e.Topics {
		fmt.Fprintf(&b, "  %s: %s\n", t.Topic, strings.Join(t.Found, ", "))
	}
	b.WriteString("fix with:\n")
	var set []string
	for _, c := range topicPolicy {
		set = append(set, c.key+"="+c.value)
	}
	for _, t := range e.Topics {
		fmt.Fprintf(&b, "  kafka-configs.sh --bootstrap-server %s --alter --entity-type topics --entity-name %s --add-config %s\n",
			e.Brokers, t.Topic, strings.Join(set, ","))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// CheckTopics reads every mimamori topic's retention and cleanup policy
// and returns a *RetentionError naming each topic that would lose events,
// and the command that fixes it.
func CheckTopics(ctx context.Context, cl *kgo.Client, cfg Config) error {
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topicNames(cfg)...)
	if err != nil {
		return fmt.Errorf("describe topic configs: %w", err)
	}
	rerr := &RetentionError{Brokers: strings.Join(cfg.Brokers, ",")}
	for _, rc := range rcs {
		if rc.Err != nil {
			return fmt.Errorf("describe topic %s: %w", rc.Name, rc.Err)
		}
		if found := policyDiff(rc.Configs); len(found) > 0 {
			rerr.Topics = append(rerr.Topics, TopicProblem{Topic: rc.Name, Found: found})
		}
	}
	if len(rerr.Topics) == 0 {
		return nil
	}
	slices.SortFunc(rerr.Topics, func(a, b TopicProblem) int { return strings.Compare(a.Topic, b.Topic) })
	return rerr
}

// policyDiff says how a topic's configs differ from the policy: a missing
// setting means the broker's default applies, which is the problem.
func policyDiff(configs []kadm.Config) []string {
	var found []string
	for _, want := range topicPolicy {
		got := "(broker default)"
		for _, c := range configs {
			if c.Key == want.key {
				got = c.MaybeValue()
			}
		}
		if got != want.value {
			found = append(found, fmt.Sprintf("%s=%s (want %s: %s)", want.key, got, want.value, want.why))
		}
	}
	return found
}

// ApplyTopicPolicy sets the retention policy on every mimamori topic. The
// platform does it only on the embedded broker, whose topics it owns (and
// which older versions created with the broker's default); on a real
// cluster a change of retention is the operator's, so CheckTopics refuses
// and prints the command instead.
func ApplyTopicPolicy(ctx context.Context, cl *kgo.Client, cfg Config) error {
	alter := make([]kadm.AlterConfig, 0, len(topicPolicy))
	for _, c := range topicPolicy {
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: c.key, Value: &c.value})
	}
	resp, err := kadm.NewClient(cl).AlterTopicConfigs(ctx, alter, topicNames(cfg)...)
	if err != nil {
		return fmt.Errorf("set topic retention: %w", err)
	}
	for _, r := range resp {
		if r.Err != nil {
			return fmt.Errorf("set retention of topic %s: %w", r.Name, r.Err)
		}
	}
	return nil
}

func topicNames(cfg Config) []string {
	names := make([]string, 0, len(events.AllTopics()))
	for _, t := range events.AllTopics() {
		names = append(names, cfg.Topic(t))
	}
	return names
}
