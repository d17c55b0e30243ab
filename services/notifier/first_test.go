package notifier_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mimamori/mimamori/services/notifier"
)

// A later event of an alert (its device and id) with other content — two
// gateways raced, or the id was older than the ingest's index — does not
// change what the first version decided: a ★☆☆ raised to ★★★ is not
// mailed, a ★★★ lowered to ★☆☆ is not mailed twice.
func TestAlertDecidedByItsFirstVersion(t *testing.T) {
	e := newEnv(t)
	cust, dev := e.customer("みまもり商事", "admin@shoji.test", "ja", "3,2", "")
	e.start(notifier.Config{})
	low := alert(dev, cust, 1, "ads.example", t0)
	raised := *low
	raised.Severity, raised.Indicator, raised.Domain, raised.ReceivedAt = 3, "raised.example", "raised.example", t0.Add(time.Second)
	high := alert(dev, cust, 3, "evil.example", t0.Add(2*time.Second))
	lowered := *high
	lowered.Severity, lowered.ReceivedAt = 1, t0.Add(3*time.Second)
	control := alert(dev, cust, 3, "control.example", t0.Add(4*time.Second)) // read after the others: same device, same partition
	e.publish(low, &raised, high, &lowered, control)
	e.waitMail(2, 30*time.Second)
	e.waitDrained("notifier", 30*time.Second)
	var about []string
	for _, m := range e.box.Messages() {
		for _, ind := range []string{"ads.example", "raised.example", "evil.example", "control.example"} {
			if strings.Contains(m.Body, ind) {
				about = append(about, ind)
			}
		}
	}
	slices.Sort(about)
	if strings.Join(about, " ") != "control.example evil.example" {
		t.Fatalf("mails about %v, want one about evil.example and one about control.example", about)
	}
}
