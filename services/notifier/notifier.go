// Package notifier mails customers what matters: important
// alerts of activated appliances, appliances stopping and coming back or
// going silent, fault-level A/B notices and planned maintenance, through
// SMTP and a signed webhook, once per (event, recipient).
//
// # Exactly once, honestly
//
// The notifier is a consumer group over appliance.alerts, devices and
// operations. Each (source event, channel, recipient) has a deterministic
// notification ID, and everything the notifier decides about one is a
// NotificationRecorded event on the notifications topic: attempting (just
// before each SMTP transaction or POST), then sent, failed (permanently,
// or retried past its bound), deferred (into a digest) or skipped. Each member tails the whole
// notifications topic (and accounts and devices) into memory, and after
// gaining partitions it reads that tail up to the end before handling a
// record, so it knows everything an earlier owner recorded. A
// notification with a terminal record is never sent again, whatever is
// replayed, restarted or rebalanced; offsets are committed only past
// records whose notifications have their outcome in the log.
//
// An SMTP transaction and a Kafka produce cannot be one atomic step. The
// window is between the relay's 250 reply and the broker's acknowledgement
// of the "sent" record. A shutdown (SIGINT/SIGTERM, context cancelled)
// never abandons that window: the "sent" record is written with a context
// of its own that shutdown does not cancel (RecordTimeout). Only a crash
// inside the window (SIGKILL, power loss, or the broker unreachable for
// RecordTimeout) leaves an "attempting" record without "sent"; the next
// owner then sends that notification once more, with the same Message-ID
// (<notification ID@sender domain>) and, for webhooks, the same
// X-Mimamori-Delivery header, so the duplicate is recognisable. At most
// one duplicate per crash and notification in flight; with W workers, at
// most W per channel and crash.
//
// # Retries
//
// A batch only decides and records; the sends are the outbox's. Each
// (channel, recipient) is a lane with its own backoff, so a relay refusing
// one mailbox or a webhook that fails or hangs holds back only its own
// notifications, never the consumer or another customer; a webhook
// attempt is cut off after WebhookTimeout. Every attempt is preceded by an
// attempting record counting it; a notification not delivered
// WebhookGiveUp or MailGiveUp after its first attempt gets a failed
// record saying so. The consumer commits no offset past a record whose
// notifications are still under way (eventlog.ConsumerConfig.Unfinished):
// after a stop, crash or rebalance the next owner reads that record
// again and resumes its notifications from the ledger (attempts so far,
// the time of the first) instead of losing them. On a revocation the
// attempts in flight end and record first, and the rest is dropped for
// the next owner.
//
// # Throttling
//
// Mail about alerts is throttled per recipient: an alert whose detection
// (device, kind, indicator) was mailed less than RepeatWindow before (by
// the alerts' receive times), or that arrives when the recipient already
// had HourlyCap alert mails in the hour before it, is deferred into a
// digest of its device; the digest goes out DigestAfter after its first
// alert and says how many alerts it covers and which. Nothing is dropped.
// Webhooks are machine-read and get every alert without throttling.
package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/events/retry"
	"github.com/mimamori/mimamori/services/smtp"
)

// Source is the CloudEvents source of the notifier's records.
const Source = "mimamori/notifier"

// DefaultWorkers is how many attempts of one channel (mail, webhooks) a
// notifier has in flight at most: so many mails may be sent again after a
// crash, each once.
const DefaultWorkers = 8

// Config tunes the notifier. Zero values take the defaults.
type Config struct {
	Group        string        // consumer group, default mimamori-notifier
	InstanceID   string        // static group membership (eventlog.ConsumerConfig.InstanceID)
	PortalURL    string        // base of links in mail, default http://127.0.0.1:8080
	RepeatWindow time.Duration // same detection on the same device within it: digest (10 min)
	HourlyCap    int           // alert mails per recipient and hour before the rest go to digests (20); <0: no cap
	DigestAfter  time.Duration // a digest goes out this long after its first alert (RepeatWindow)
	DigestCheck  time.Duration // how often due digests and retries past their bound are looked for (5 s)
	// Workers bounds the attempts in flight per channel
	// (DefaultWorkers); one recipient takes at most half of them, and one
	// once it fails.
	Workers int
	// WebhookTimeout cuts one webhook attempt off (10 s).
	WebhookTimeout time.Duration
	// WebhookGiveUp and MailGiveUp bound the retries of a notification,
	// counted from its first attempt; then it is recorded failed (1 h
	// and 4 h).
	WebhookGiveUp time.Duration
	MailGiveUp    time.Duration
	// FlushTimeout bounds how long the batch in flight may take to
	// finish after shutdown was asked for (30 s).
	FlushTimeout time.Duration
	// ActivationWait bounds how long a fresh alert of a registered
	// appliance that is not activated yet waits for its activation (30 s).
	ActivationWait time.Duration
	// RecordTimeout bounds writing the "sent" record after the relay
	// accepted, regardless of shutdown (30 s).
	RecordTimeout time.Duration
	WebhookKey    []byte // derives each customer's webhook secret
	Now           func() time.Time
}

// Group is the consumer group of the service unless configured otherwise.
const Group = "mimamori-notifier"

func (c *Config) defaults() {
	if c.Group == "" {
		c.Group = Group
	}
	if c.PortalURL == "" {
		c.PortalURL = "http://127.0.0.1:8080"
	}
	c.PortalURL = strings.TrimRight(c.PortalURL, "/")
	if c.RepeatWindow <= 0 {
		c.RepeatWindow = 10 * time.Minute
	}
	if c.HourlyCap == 0 {
		c.HourlyCap = 20
	}
	if c.DigestAfter <= 0 {
		c.DigestAfter = c.RepeatWindow
	}
	if c.DigestCheck <= 0 {
		c.DigestCheck = 5 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.WebhookTimeout <= 0 {
		c.WebhookTimeout = 10 * time.Second
	}
	if c.WebhookGiveUp <= 0 {
		c.WebhookGiveUp = time.Hour
	}
	if c.MailGiveUp <= 0 {
		c.MailGiveUp = 4 * time.Hour
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = 30 * time.Second
	}
	if c.ActivationWait <= 0 {
		c.ActivationWait = 30 * time.Second
	}
	if c.RecordTimeout <= 0 {
		c.RecordTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Notifier is one member of the notifier group.
type Notifier struct {
	cfg  Config
	kcfg eventlog.Config
	pub  *eventlog.Producer
	mail *smtp.Mailer
	hc   *http.Client
	log  *slog.Logger
	st   *state
	tail *eventlog.Tail
	cons *eventlog.Consumer
	out  *outbox

	work      sync.Mutex // one batch or digest flush at a time
	owned     map[string]map[int32]bool
	needCatch bool
	// unheard are devices whose activation a fresh alert waited for in
	// vain: their next alerts do not wait again (until they activate).
	unheard map[string]bool
	// stopping ends when Run is asked to stop.
	stopping context.Context
	// firstReads keeps an alert's decision its first version's.
	firstReads *firstReads

	total   *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// New connects a notifier. reg may be nil.
func New(cfg Config, kcfg eventlog.Config, pub *eventlog.Producer, mailer *smtp.Mailer, logger *slog.Logger, reg prometheus.Registerer) (*Notifier, error) {
	cfg.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if mailer == nil {
		return nil, errors.New("notifier: a mailer is required")
	}
	n := &Notifier{cfg: cfg, kcfg: kcfg, pub: pub, mail: mailer, hc: &http.Client{Timeout: cfg.WebhookTimeout}, log: logger,
		st: newState(), out: newOutbox(cfg.Workers), owned: map[string]map[int32]bool{}, unheard: map[string]bool{}, firstReads: newFirstReads(),
		stopping: context.Background(),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimamori_notifications_total",
			Help: "Notification records written, by channel, kind and status."}, []string{"channel", "kind", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mimamori_notification_send_seconds",
			Help: "Time to hand one notification to the relay or webhook, retries included.", Buckets: prometheus.DefBuckets}, []string{"channel"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{n.total, n.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("notifier metrics: %w", err)
			}
		}
	}
	var err error
	n.tail, err = eventlog.NewTail(kcfg, []string{kcfg.Topic(events.TopicAccounts), kcfg.Topic(events.TopicDevices),
		kcfg.Topic(events.TopicNotifications)}, logger)
	if err != nil {
		return nil, err
	}
	topics := []string{kcfg.Topic(events.TopicAlerts), kcfg.Topic(events.TopicDevices), kcfg.Topic(events.TopicOperations)}
	n.cons, err = eventlog.NewConsumer(kcfg, eventlog.ConsumerConfig{Group: cfg.Group, Topics: topics, MaxBatch: 500,
		FlushTimeout: cfg.FlushTimeout, InstanceID: cfg.InstanceID, Unfinished: n.out.unfinished, Logger: logger}, n.handle,
		kgo.OnPartitionsAssigned(n.assigned), kgo.OnPartitionsRevoked(n.revoked), kgo.OnPartitionsLost(n.revoked))
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (n *Notifier) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	n.work.Lock()
	defer n.work.Unlock()
	parts := 0
	for _, ps := range m {
		parts += len(ps)
	}
	n.log.Info("notifier assigned", "partitions", parts)
	for t, ps := range m {
		if n.owned[t] == nil {
			n.owned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			n.owned[t][p] = true
		}
	}
	n.needCatch = true
}

// revoked hands the partitions over: the notifications of their records
// still under way are finished (those in flight) or left to the next
// owner, who reads their records again (see Unfinished). Closing the
// consumer revokes everything, before the group is left.
func (n *Notifier) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	n.work.Lock()
	for t, ps := range m {
		for _, p := range ps {
			delete(n.owned[t], p)
		}
	}
	n.work.Unlock()
	n.out.release(m)
}

// Run follows the state topics, then consumes until ctx ends. Due digests
// are sent every DigestCheck. Notifications are delivered by the outbox
// beside the consumer; on shutdown the attempts in flight end and record
// their outcome, and the rest is resumed by the next owner.
func (n *Notifier) Run(ctx context.Context) error {
	n.stopping = ctx
	apply := func(r *kgo.Record, e events.Envelope) {
		if err := n.st.apply(e); err != nil {
			n.log.Warn("notifier state event skipped", "topic", r.Topic, "offset", r.Offset, "err", err)
		}
	}
	dctx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	var dispatching sync.WaitGroup
	dispatching.Go(func() { n.dispatch(dctx) })
	haltOnDone := context.AfterFunc(ctx, n.out.halt)
	err := eventlog.Follow(ctx, n.tail, apply, n.cons, n.cfg.DigestCheck, func(ctx context.Context) {
		n.work.Lock()
		err := n.ready(ctx)
		if err == nil {
			err = n.flushDigests(ctx)
		}
		n.work.Unlock()
		if err != nil && ctx.Err() == nil {
			n.log.Warn("digest flush failed; retrying", "err", err)
		}
	})
	haltOnDone()
	n.out.stop()
	stopDispatch()
	dispatching.Wait()
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	return nil
}

// ID is the deterministic notification ID of (source, channel, recipient).
func ID(sourceID, channel, recipient string) string {
	h := sha256.Sum256([]byte(sourceID + "\x00" + channel + "\x00" + strings.ToLower(recipient)))
	return "nf_" + hex.EncodeToString(h[:16])
}

// job is one notification to record and maybe send.
type job struct {
	rec     events.NotificationRecorded
	src     source
	c       content
	send    bool
	hookURL string
	secret  string
}

func (n *Notifier) catchUp(ctx context.Context, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return n.tail.WaitCaughtUp(wctx)
}

// ready reads, after gaining partitions, everything an earlier owner
// recorded. Callers hold n.work.
func (n *Notifier) ready(ctx context.Context) error {
	if n.needCatch {
		if err := n.catchUp(ctx, time.Minute); err != nil {
			return fmt.Errorf("notifier: read notifications before handling: %w", err)
		}
		n.needCatch = false
	}
	return nil
}

func (n *Notifier) handle(ctx context.Context, recs []*kgo.Record) error {
	n.work.Lock()
	defer n.work.Unlock()
	if err := n.ready(ctx); err != nil {
		return err
	}
	if err := n.out.wait(ctx); err != nil {
		return err
	}
	caughtThisBatch := false
	var jobs []job
	for _, r := range recs {
		e, err := eventlog.FromRecord(r)
		if err != nil {
			continue
		}
		p, err := events.Decode(e)
		if err != nil {
			if !errors.Is(err, events.ErrUnknownType) {
				n.log.Warn("notifier: record skipped", "topic", r.Topic, "offset", r.Offset, "err", err)
			}
			continue
		}
		if !caughtThisBatch && n.needsState(p) {
			// A customer or device registered a moment ago: read up.
			if err := n.catchUp(ctx, 3*time.Second); err != nil {
				n.log.Warn("notifier: state not caught up", "err", err)
			}
			caughtThisBatch = true
		}
		if a, ok := p.(*events.Alert); ok {
			if !n.firstReads.first(a.DeviceID+"|"+a.ID, r.Partition, r.Offset) {
				n.log.Debug("notifier: a later record of an alert; its first version's decision stands", "device", a.DeviceID, "alert", a.ID)
				continue
			}
			if err := n.awaitActivation(ctx, a); err != nil {
				return err
			}
		}
		jobs = append(jobs, n.plan(r, e, p)...)
	}
	if err := n.execute(ctx, jobs); err != nil {
		return err
	}
	return n.flushDigests(ctx)
}

// awaitActivation waits, a bounded time, for the activation of the
// appliance of a fresh alert. An appliance is activated by its first
// heartbeat, which the watchdog turns into an event; an alert received
// right after that heartbeat can reach the notifier before the event does
// (a busy or restarting watchdog), and would be skipped as "not activated"
// although its appliance was installed and sending heartbeats. An
// appliance whose activation never came in that time is not waited for
// again until it activates. Shutdown ends the wait at once, and the batch
// is left for the next owner (eventlog.ErrLeftForNextOwner), which waits
// again: stopping neither waits for an activation nor decides without one.
func (n *Notifier) awaitActivation(ctx context.Context, a *events.Alert) error {
	n.st.mu.Lock()
	d := n.st.devices[a.DeviceID]
	waiting := d != nil && !d.activated && !n.unheard[a.DeviceID]
	n.st.mu.Unlock()
	if !waiting || n.cfg.Now().Sub(a.ReceivedAt) > 2*time.Minute {
		return nil
	}
	n.log.Debug("notifier: a fresh alert waits for its appliance's activation", "device", a.DeviceID, "alert", a.ID)
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	defer context.AfterFunc(n.stopping, func() { stop(eventlog.ErrLeftForNextOwner) })()
	deadline := time.Now().Add(n.cfg.ActivationWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err := n.catchUp(ctx, time.Second); err != nil && ctx.Err() == nil {
			n.log.Warn("notifier: state not caught up", "err", err)
		}
		n.st.mu.Lock()
		activated := n.st.devices[a.DeviceID].activated
		n.st.mu.Unlock()
		if activated {
			delete(n.unheard, a.DeviceID)
			return nil
		}
		if retry.Wait(ctx, 200*time.Millisecond) != nil {
			break
		}
	}
	if cause := context.Cause(ctx); errors.Is(cause, eventlog.ErrLeftForNextOwner) {
		return fmt.Errorf("notifier: waiting for the activation of %s: %w", a.DeviceID, cause)
	}
	n.unheard[a.DeviceID] = true
	return nil
}

// needsState says whether the state lacks what p needs.
func (n *Notifier) needsState(p events.Payload) bool {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	var dev, cust string
	switch p := p.(type) {
	case *events.Alert:
		dev, cust = p.DeviceID, p.CustomerID
	case *events.DeviceWentOffline:
		dev, cust = p.DeviceID, p.CustomerID
	case *events.DeviceCameOnline:
		dev, cust = p.DeviceID, p.CustomerID
	case *events.DeviceWentSilent:
		dev, cust = p.DeviceID, p.CustomerID
	default:
		return false
	}
	d, c := n.st.devices[dev], n.st.customers[cust]
	return d == nil || !d.activated || c == nil || c.email == ""
}

// targets resolves a customers field ("*" or a comma-separated list).
func (n *Notifier) targets(list string) []*customer {
	var out []*customer
	if strings.TrimSpace(list) == "*" {
		for _, c := range n.st.customers {
			out = append(out, c)
		}
		slices.SortFunc(out, func(a, b *customer) int { return strings.Compare(a.id, b.id) })
		return out
	}
	for _, id := range strings.Split(list, ",") {
		if c := n.st.customers[strings.TrimSpace(id)]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

// execute writes the records of the jobs that are only recorded, and
// hands the others to the outbox: a batch never waits for a relay or a
// webhook. It returns an error (the batch is then retried, not committed)
// if a record could not be written.
func (n *Notifier) execute(ctx context.Context, jobs []job) error {
	var recordOnly []events.Payload
	var sends []job
	for i := range jobs {
		if jobs[i].send {
			sends = append(sends, jobs[i])
			continue
		}
		r := jobs[i].rec
		r.RecordedAt = n.cfg.Now().UTC()
		recordOnly = append(recordOnly, &r)
	}
	if err := n.record(ctx, recordOnly...); err != nil {
		return err
	}
	n.enqueue(sends)
	return nil
}

// record writes records and applies them to the state.
func (n *Notifier) record(ctx context.Context, recs ...events.Payload) error {
	if len(recs) == 0 {
		return nil
	}
	now := n.cfg.Now()
	envs := make([]events.Envelope, 0, len(recs))
	for _, p := range recs {
		e, err := events.New(Source, p, now)
		if err != nil {
			return err
		}
		envs = append(envs, e)
	}
	if err := n.pub.Publish(ctx, envs...); err != nil {
		return fmt.Errorf("notifier: record: %w", err)
	}
	n.st.mu.Lock()
	for _, p := range recs {
		r := p.(*events.NotificationRecorded)
		n.st.applyRecord(r)
		n.total.WithLabelValues(r.Channel, r.Kind, r.Status).Inc()
	}
	n.st.mu.Unlock()
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// send makes one attempt. An attempt once started is not cut by shutdown:
// cutting it after the relay stored the message but before its 250
// reached us would cause a duplicate. It is bounded by WebhookTimeout or
// the SMTP timeout instead.
func (n *Notifier) send(j job) error {
	if j.rec.Channel == events.ChannelWebhook {
		body, err := json.Marshal(map[string]any{"id": j.rec.NotificationID, "kind": j.rec.Kind, "customer_id": j.rec.CustomerID,
			"source_event_id": j.rec.SourceEventID, "subject": j.c.subject, "data": j.c.hook})
		if err != nil {
			return permanent{err}
		}
		return postWebhook(context.Background(), n.hc, j.hookURL, j.secret, j.rec.NotificationID, body, n.cfg.Now())
	}
	return n.mail.Send(context.Background(), j.rec.Recipient, j.rec.NotificationID, j.c.subject, j.c.body, n.cfg.Now())
}

// flushDigests sends the digests that are due and whose alerts came from
// a partition this member owns. Callers hold n.work.
func (n *Notifier) flushDigests(ctx context.Context) error {
	now := n.cfg.Now()
	alerts := n.kcfg.Topic(events.TopicAlerts)
	var jobs []job
	n.st.mu.Lock()
	for key, g := range n.st.digests {
		if g.closed || now.Sub(g.firstAt) < n.cfg.DigestAfter || !n.owned[alerts][int32(g.partition)] {
			continue
		}
		c := n.st.customers[g.customer]
		if c == nil {
			continue
		}
		dcopy := device{serial: g.device}
		if d := n.st.devices[g.device]; d != nil && d.serial != "" {
			dcopy = *d
		}
		id := ID(key, g.channel, g.recipient)
		if terminal(n.st.ledger[id].status) {
			g.closed = true
			continue
		}
		gcopy := *g
		gcopy.detections = map[string]int{}
		for k, v := range g.detections {
			gcopy.detections[k] = v
		}
		j := job{send: true, src: source{topic: alerts, partition: int32(g.partition), offset: -1},
			rec: events.NotificationRecorded{NotificationID: id, Channel: g.channel, Recipient: g.recipient, CustomerID: g.customer,
				Kind: kindDigest, SourceEventID: key, SourceTopic: events.TopicAlerts, SourcePartition: g.partition, DeviceID: g.device,
				DigestKey: key, Covers: g.count, Severity: g.severity, EventTime: g.lastAt}}
		j.c = n.renderDigest(c, &dcopy, &gcopy, g.severity)
		jobs = append(jobs, j)
		// From now on the digest is being delivered (see plan).
		if n.st.ledger[id].status == "" {
			r := j.rec
			r.Status, r.RecordedAt = events.NotifyAttempting, now.UTC()
			n.st.applyRecord(&r)
		}
	}
	n.st.mu.Unlock()
	return n.execute(ctx, jobs)
}
