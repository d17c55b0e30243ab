package notifier

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/retry"
)

// Retry pacing of a lane that fails, the one retry policy (events/retry):
// the first retry after at most minBackoff, doubling up to maxBackoff, or
// after a webhook's Retry-After.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 5 * time.Minute
)

// The consumer reads on while the lanes that are not failing hold fewer
// than backlog notifications, each lane counting at most backlogPerLane:
// the outbox holds what the channels can deliver soon, and a slow
// recipient's queue holds nobody else back.
const (
	backlog        = 1000
	backlogPerLane = 50
)

// source is where a notification comes from: the record whose offset
// stays uncommitted until the notification has an outcome. Digests have
// offset -1: they are derived from the state, not from one record.
type source struct {
	topic     string
	partition int32
	offset    int64
}

// delivery is one notification the outbox holds: waiting in its lane, in
// flight, or delivered with its outcome still to be written.
type delivery struct {
	j        job
	since    time.Time // first attempt (Config.Now): the give-up bound counts from it
	queued   time.Time // when this member took it on
	attempts int       // attempts begun, by every owner
	lastErr  error
	outcome  *events.NotificationRecorded // sent or failed, to be written
	flying   bool
	released bool // its partition was revoked: forget it after the attempt
}

// lane is one channel and recipient. Its notifications are attempted in
// order, a few at a time; after a temporary failure the lane waits
// (backoff) and then tries one notification at a time until one gets
// through. A recipient that fails or hangs holds only its own lane and a
// bounded share of its channel's workers.
type lane struct {
	channel string
	queue   []*delivery
	flying  int
	failing bool
	nextAt  time.Time      // wall clock: when a failing lane may try again
	backoff *retry.Backoff // while failing
}

// outbox holds every notification this member is delivering, apart from
// the consumer's batches: a batch only records and queues, so nothing a
// recipient does holds the consumer, or another recipient, back.
type outbox struct {
	mu      sync.Mutex
	ended   *sync.Cond // an attempt ended
	lanes   map[string]*lane
	byID    map[string]*delivery
	free    map[string]int // channel → attempts that may still start
	stopped bool           // shutdown: start nothing more
	wake    chan struct{}  // to the dispatcher: work to look at
	room    chan struct{}  // to the consumer: an attempt ended
}

func newOutbox(workers int) *outbox {
	o := &outbox{lanes: map[string]*lane{}, byID: map[string]*delivery{},
		free: map[string]int{events.ChannelMail: workers, events.ChannelWebhook: workers},
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	o.ended = sync.NewCond(&o.mu)
	return o
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// wait blocks while the outbox is full (see backlog) or until ctx ends.
func (o *outbox) wait(ctx context.Context) error {
	for {
		o.mu.Lock()
		queued := 0
		for _, l := range o.lanes {
			if !l.failing {
				queued += min(len(l.queue), backlogPerLane)
			}
		}
		o.mu.Unlock()
		if queued < backlog {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("notifier: waiting for deliveries: %w", ctx.Err())
		case <-o.room:
		}
	}
}

// enqueue queues the jobs not held already. The ledger says how far
// earlier owners got with each.
func (n *Notifier) enqueue(jobs []job) {
	if len(jobs) == 0 {
		return
	}
	o := n.out
	now := n.cfg.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	for _, j := range jobs {
		id := j.rec.NotificationID
		if o.byID[id] != nil {
			continue
		}
		prior := n.st.ledger[id]
		d := &delivery{j: j, since: prior.since, queued: time.Now(), attempts: prior.attempts}
		if d.since.IsZero() {
			d.since = now
		}
		key := j.rec.Channel + "\x00" + j.rec.Recipient
		l := o.lanes[key]
		if l == nil {
			l = &lane{channel: j.rec.Channel}
			o.lanes[key] = l
		}
		l.queue = append(l.queue, d)
		o.byID[id] = d
	}
	poke(o.wake)
}

// unfinished is, per source topic and partition, the offset of the oldest
// record with a notification not done yet: the consumer commits no
// further, so a restart or the partition's next owner reads it again and
// resumes the notification from the ledger.
func (o *outbox) unfinished() map[string]map[int32]int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]map[int32]int64{}
	for _, d := range o.byID {
		s := d.j.src
		if s.offset < 0 {
			continue
		}
		if out[s.topic] == nil {
			out[s.topic] = map[int32]int64{}
		}
		if o, ok := out[s.topic][s.partition]; !ok || s.offset < o {
			out[s.topic][s.partition] = s.offset
		}
	}
	return out
}

// release forgets the notifications of revoked partitions, after waiting
// for their attempts in flight to end and record: their next owner
// resumes the rest from the log, and sends nothing a second time.
func (o *outbox) release(m map[string][]int32) {
	revoked := func(d *delivery) bool { return slices.Contains(m[d.j.src.topic], d.j.src.partition) }
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, l := range o.lanes {
		l.queue = slices.DeleteFunc(l.queue, func(d *delivery) bool {
			if revoked(d) {
				delete(o.byID, d.j.rec.NotificationID)
				return true
			}
			return false
		})
	}
	for {
		busy := false
		for _, d := range o.byID {
			if d.flying && revoked(d) {
				d.released, busy = true, true
			}
		}
		if !busy {
			return
		}
		o.ended.Wait()
	}
}

// halt starts no more attempts.
func (o *outbox) halt() {
	o.mu.Lock()
	o.stopped = true
	o.mu.Unlock()
}

// stop starts no more attempts and waits for those in flight.
func (o *outbox) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopped = true
	for {
		busy := false
		for _, d := range o.byID {
			busy = busy || d.flying
		}
		if !busy {
			return
		}
		o.ended.Wait()
	}
}

func (n *Notifier) giveUpAfter(channel string) time.Duration {
	if channel == events.ChannelWebhook {
		return n.cfg.WebhookGiveUp
	}
	return n.cfg.MailGiveUp
}

// dispatch starts attempts as lanes allow, and records as failed what is
// past its bound, until ctx ends.
func (n *Notifier) dispatch(ctx context.Context) {
	o := n.out
	for {
		wait := n.cfg.DigestCheck // the bound is on Config.Now: look again soon
		o.mu.Lock()
		now, clock := time.Now(), n.cfg.Now()
		for key, l := range o.lanes {
			if o.stopped {
				break
			}
			// Past its bound, a notification's failure goes first,
			// whatever the lane's backoff.
			var over []*delivery
			l.queue = slices.DeleteFunc(l.queue, func(d *delivery) bool {
				bound := n.giveUpAfter(l.channel)
				if d.outcome == nil && clock.Sub(d.since) >= bound {
					d.outcome = n.gaveUp(d, bound)
				}
				if d.outcome != nil {
					over = append(over, d)
					return true
				}
				return false
			})
			l.queue = append(over, l.queue...)
			limit := max(1, n.cfg.Workers/2)
			if l.failing {
				limit = 1
			}
			for len(l.queue) > 0 && o.free[l.channel] > 0 && l.flying < limit &&
				(l.queue[0].outcome != nil || !l.failing || !now.Before(l.nextAt)) {
				d := l.queue[0]
				l.queue = l.queue[1:]
				d.flying = true
				l.flying++
				o.free[l.channel]--
				go n.attempt(l, d)
			}
			if len(l.queue) > 0 && l.failing && now.Before(l.nextAt) {
				wait = min(wait, l.nextAt.Sub(now))
			}
			if len(l.queue) == 0 && l.flying == 0 && (!l.failing || !now.Before(l.nextAt)) {
				delete(o.lanes, key)
			}
		}
		o.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-o.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// gaveUp is the failed record of a notification past its bound.
func (n *Notifier) gaveUp(d *delivery, bound time.Duration) *events.NotificationRecorded {
	r := d.j.rec
	r.Status, r.Attempts, r.RecordedAt = events.NotifyFailed, d.attempts, n.cfg.Now().UTC()
	if r.Channel == events.ChannelMail {
		r.MessageID = "<" + n.mail.MessageID(r.NotificationID) + ">"
	}
	last := "no attempt finished"
	if d.lastErr != nil {
		last = d.lastErr.Error()
	}
	r.Reason = truncate(fmt.Sprintf("not delivered within %s of the first attempt (%d attempts); last error: %s", bound, d.attempts, last), 1000)
	n.log.Error("notification given up", "id", r.NotificationID, "channel", r.Channel, "customer", r.CustomerID,
		"kind", r.Kind, "attempts", d.attempts, "err", d.lastErr)
	return &r
}

// attempt runs one attempt at d, then puts d back in its lane for a retry
// or forgets it once its outcome is written.
func (n *Notifier) attempt(l *lane, d *delivery) {
	temp, done := n.try(d)
	o := n.out
	o.mu.Lock()
	defer o.mu.Unlock()
	d.flying = false
	l.flying--
	o.free[l.channel]++
	switch {
	case done || d.released:
		delete(o.byID, d.j.rec.NotificationID)
	case temp != nil:
		d.lastErr = temp
		now, after := time.Now(), retryAfter(temp)
		if !l.failing || !now.Before(l.nextAt) {
			if l.backoff == nil {
				l.backoff = retry.New(minBackoff, maxBackoff)
			}
			l.nextAt = now.Add(retry.Next(l.backoff, after))
		} else if at := now.Add(after); at.After(l.nextAt) {
			l.nextAt = at // a reply in flight asked for longer
		}
		l.failing = true
		l.queue = slices.Insert(l.queue, 0, d)
	default: // delivered, the outcome not written yet
		l.queue = slices.Insert(l.queue, 0, d)
	}
	if done && d.outcome != nil && d.outcome.Status == events.NotifySent {
		l.failing, l.backoff = false, nil
	}
	o.ended.Broadcast()
	poke(o.wake)
	poke(o.room)
}

// try makes one attempt at d: attempting, the send, then its outcome; or,
// when d already has an outcome, writes it. It returns the temporary
// failure to retry after, or done once d has an outcome in the log.
func (n *Notifier) try(d *delivery) (temp error, done bool) {
	id := d.j.rec.NotificationID
	if d.outcome == nil {
		n.st.mu.Lock()
		decided := terminal(n.st.ledger[id].status)
		n.st.mu.Unlock()
		if decided {
			return nil, true // an earlier owner's outcome arrived meanwhile
		}
		attempting := d.j.rec
		attempting.Status, attempting.Attempts, attempting.RecordedAt = events.NotifyAttempting, d.attempts+1, n.cfg.Now().UTC()
		if attempting.Channel == events.ChannelMail {
			attempting.MessageID = "<" + n.mail.MessageID(id) + ">"
		}
		actx, cancel := context.WithTimeout(context.Background(), n.cfg.RecordTimeout)
		err := n.record(actx, &attempting)
		cancel()
		if err != nil {
			return err, false // nothing was sent
		}
		d.attempts++
		err = n.send(d.j)
		if err != nil && !isPermanent(err) {
			n.log.Warn("notification not delivered; retrying", "id", id, "channel", d.j.rec.Channel,
				"attempt", d.attempts, "err", err)
			return err, false
		}
		n.latency.WithLabelValues(d.j.rec.Channel).Observe(time.Since(d.queued).Seconds())
		out := attempting
		out.Status, out.RecordedAt = events.NotifySent, n.cfg.Now().UTC()
		if err != nil {
			out.Status, out.Reason = events.NotifyFailed, truncate(err.Error(), 1000)
			n.log.Error("notification failed permanently", "id", id, "channel", d.j.rec.Channel,
				"customer", d.j.rec.CustomerID, "kind", d.j.rec.Kind, "err", err)
		}
		d.outcome = &out
	}
	// The channel has answered: write the outcome even if shutdown was
	// asked for meanwhile (see the package doc).
	rctx, cancel := context.WithTimeout(context.Background(), n.cfg.RecordTimeout)
	defer cancel()
	for {
		err := n.record(rctx, d.outcome)
		if err == nil {
			return nil, true
		}
		if rctx.Err() != nil || retry.Wait(rctx, 100*time.Millisecond) != nil {
			n.log.Warn("notification outcome not recorded; trying again (a crash before it sends the notification again, same Message-ID)",
				"id", id, "err", err)
			return nil, false
		}
	}
}
