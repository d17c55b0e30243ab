package notifier

import (
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mimamori/mimamori/events"
)

type customer struct {
	id, name, email string
	severities      []int
	lang            string
	webhookURL      string
	secretVersion   int
}

type device struct {
	customer  string
	serial    string
	mac       string
	activated bool
}

// record is what the ledger knows of one notification ID.
type record struct {
	status    string
	digestKey string
	since     time.Time // of the first attempting record: retries are bounded from it
	attempts  int       // attempts begun, as the attempting records count them
}

// digest is an open or sent digest of deferred alerts for one (customer,
// device, recipient, channel).
type digest struct {
	key        string
	customer   string
	device     string
	recipient  string
	channel    string
	partition  int
	firstAt    time.Time
	lastAt     time.Time
	count      int
	severity   int
	detections map[string]int
	closed     bool
}

// state is everything the notifier rebuilds from the accounts, devices and
// notifications topics. The tail goroutine applies; handlers read and
// apply their own records at once (applying the same record twice is
// harmless).
type state struct {
	mu        sync.Mutex
	customers map[string]*customer
	devices   map[string]*device
	ledger    map[string]record // notification ID → newest status
	// throttling
	lastImmediate map[string]time.Time   // detection → event time of the newest immediate mail
	hourly        map[string][]time.Time // customer → event times of immediate alert mails, sorted
	digests       map[string]*digest     // digest ID → digest
	openDigest    map[string]string      // customer|device|recipient|channel → open digest ID
}

func newState() *state {
	return &state{customers: map[string]*customer{}, devices: map[string]*device{}, ledger: map[string]record{},
		lastImmediate: map[string]time.Time{}, hourly: map[string][]time.Time{}, digests: map[string]*digest{},
		openDigest: map[string]string{}}
}

func (s *state) cust(id string) *customer {
	c := s.customers[id]
	if c == nil {
		c = &customer{id: id, severities: []int{events.SeverityHigh, events.SeverityMedium}, lang: events.LangJapanese}
		s.customers[id] = c
	}
	return c
}

func (s *state) dev(id string) *device {
	d := s.devices[id]
	if d == nil {
		d = &device{}
		s.devices[id] = d
	}
	return d
}

func (s *state) apply(e events.Envelope) error {
	p, err := events.Decode(e)
	if errors.Is(err, events.ErrUnknownType) {
		return nil
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked(p)
	return nil
}

func (s *state) applyLocked(p events.Payload) {
	switch p := p.(type) {
	case *events.CustomerRegistered:
		c := s.cust(p.CustomerID)
		c.name, c.email = p.Name, p.Email
	case *events.NotificationSettingsChanged:
		c := s.cust(p.CustomerID)
		c.severities, _ = events.ParseSeverities(p.ImportantSeverities)
		c.lang, c.webhookURL, c.secretVersion = p.Language, p.WebhookURL, p.WebhookSecretVersion
	case *events.DeviceRegistered:
		d := s.dev(p.DeviceID)
		d.serial, d.mac = p.Serial, p.MAC
	case *events.DeviceAssigned:
		s.dev(p.DeviceID).customer = p.CustomerID
	case *events.DeviceActivated:
		d := s.dev(p.DeviceID)
		d.activated = true
		if d.customer == "" {
			d.customer = p.CustomerID
		}
	case *events.NotificationRecorded:
		s.applyRecord(p)
	}
}

func terminal(status string) bool { return status != events.NotifyAttempting && status != "" }

func (s *state) applyRecord(n *events.NotificationRecorded) {
	old := s.ledger[n.NotificationID]
	if terminal(old.status) {
		return // the first terminal record wins; later ones are duplicates
	}
	r := record{status: n.Status, digestKey: n.DigestKey, since: old.since, attempts: max(old.attempts, n.Attempts)}
	if n.Status == events.NotifyAttempting && r.since.IsZero() {
		r.since = n.RecordedAt
	}
	s.ledger[n.NotificationID] = r
	switch {
	case n.Kind == kindAlert && n.Status == events.NotifyAttempting && old.status == "":
		if n.EventTime.After(s.lastImmediate[n.Detection]) {
			s.lastImmediate[n.Detection] = n.EventTime
		}
		h := s.hourly[n.CustomerID+"|"+n.Recipient]
		i := sort.Search(len(h), func(i int) bool { return h[i].After(n.EventTime) })
		h = slices.Insert(h, i, n.EventTime)
		if len(h) > 10000 {
			h = h[len(h)-10000:]
		}
		s.hourly[n.CustomerID+"|"+n.Recipient] = h
	case n.Kind == kindAlert && n.Status == events.NotifyDeferred:
		d := s.digests[n.DigestKey]
		if d == nil {
			d = &digest{key: n.DigestKey, customer: n.CustomerID, device: n.DeviceID, recipient: n.Recipient, channel: n.Channel,
				partition: n.SourcePartition, firstAt: n.EventTime, detections: map[string]int{}}
			s.digests[n.DigestKey] = d
			s.openDigest[openKey(n.CustomerID, n.DeviceID, n.Recipient, n.Channel)] = n.DigestKey
		}
		d.count++
		d.severity = max(d.severity, n.Severity)
		d.detections[detectionLabel(n.Detection)]++
		if n.EventTime.Before(d.firstAt) {
			d.firstAt = n.EventTime
		}
		if n.EventTime.After(d.lastAt) {
			d.lastAt = n.EventTime
		}
	case n.Kind == kindDigest && terminal(n.Status):
		if d := s.digests[n.DigestKey]; d != nil {
			d.closed = true
			k := openKey(d.customer, d.device, d.recipient, d.channel)
			if s.openDigest[k] == n.DigestKey {
				delete(s.openDigest, k)
			}
		}
	}
}

func openKey(customer, device, recipient, channel string) string {
	return customer + "|" + device + "|" + recipient + "|" + channel
}

// detectionLabel is the kind and indicator of a detection key.
func detectionLabel(det string) string {
	_, rest, _ := strings.Cut(det, "|")
	return strings.Replace(rest, "|", ": ", 1)
}

// sentWithin counts immediate alert mails to the recipient of a customer
// with event times in (t-window, t].
func (s *state) sentWithin(customer, recipient string, t time.Time, window time.Duration) int {
	h := s.hourly[customer+"|"+recipient]
	lo := sort.Search(len(h), func(i int) bool { return h[i].After(t.Add(-window)) })
	hi := sort.Search(len(h), func(i int) bool { return h[i].After(t) })
	return hi - lo
}
