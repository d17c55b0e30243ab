package inspect

import (
	"net/netip"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
)

// foldKey is what makes two detections "the same".
type foldKey struct {
	kind, indicator string
	src, dst        netip.Addr
	zones           string // one address plan may be reused on two VLANs
}

type pending struct {
	key   foldKey
	alert *events.Alert
	until time.Time
}

// folder holds each detection for one window of packet time, counting
// repeats, then emits it. Windows are fixed length, so pending alerts
// close in the order they opened: a FIFO suffices.
type folder struct {
	window time.Duration
	newID  func(time.Time) string
	emit   func(*events.Alert)
	open   map[foldKey]*pending
	fifo   []*pending
	head   int
}

func newFolder(window time.Duration, newID func(time.Time) string, emit func(*events.Alert)) *folder {
	if newID == nil {
		newID = func(t time.Time) string {
			id, err := ksuid.NewRandomWithTime(t)
			if err != nil {
				return ksuid.New().String()
			}
			return id.String()
		}
	}
	return &folder{window: window, newID: newID, emit: emit, open: map[foldKey]*pending{}}
}

func (f *folder) add(k foldKey, mk func() *events.Alert, ts time.Time) {
	if p, ok := f.open[k]; ok {
		p.alert.Count++
		return
	}
	a := mk()
	a.Count = 1
	p := &pending{key: k, alert: a, until: ts.Add(f.window)}
	f.open[k] = p
	f.fifo = append(f.fifo, p)
}

// advance emits every alert whose window closed by now.
func (f *folder) advance(now time.Time) {
	for f.head < len(f.fifo) && !now.Before(f.fifo[f.head].until) {
		f.out(f.fifo[f.head])
		f.fifo[f.head] = nil
		f.head++
	}
	if f.head > 1024 && f.head*2 > len(f.fifo) {
		f.fifo = append(f.fifo[:0], f.fifo[f.head:]...)
		f.head = 0
	}
}

func (f *folder) flush() {
	for ; f.head < len(f.fifo); f.head++ {
		f.out(f.fifo[f.head])
		f.fifo[f.head] = nil
	}
	f.fifo, f.head = f.fifo[:0], 0
}

func (f *folder) out(p *pending) {
	delete(f.open, p.key)
	p.alert.ID = f.newID(p.alert.DetectedAt)
	f.emit(p.alert)
}
