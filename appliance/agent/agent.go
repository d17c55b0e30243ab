// Package agent is the appliance: it feeds captured frames to the
// inspection engine with the definitions in use, writes alerts as JSON
// lines (offline mode) or into the on-disk queue, and in online mode sends
// the queue, gap records and heartbeats to the ingest gateway and polls it
// for newer definitions, which it verifies and swaps in without stopping
// inspection.
//
// Power loss: each alert is handed to the queue writer the moment the
// engine emits it; the writer appends everything handed over in one write
// and one fsync, then takes what arrived meanwhile (group commit). An
// alert is therefore on disk one fsync after it was emitted (about 1-20 ms
// on flash), and what power loss can take is the alerts emitted during the
// last fsync or two, never a fixed-size batch. Detections still inside
// their fold window (FoldWindow, default 60 s of packet time) are in
// memory only and are lost with the power too: folding trades them for not
// sending every repeat.
package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/appliance/inspect"
	"github.com/mimamori/mimamori/appliance/queue"
	"github.com/mimamori/mimamori/events"
)

// Defaults for the zero values of Config.
const (
	DefaultHeartbeatEvery = 60 * time.Second
	DefaultPollEvery      = time.Hour
	// ClientWarn is the number of client devices seen in 24 h above which
	// the agent warns (R-02: the service covers up to 100).
	ClientWarn = 100
	// maxClients bounds the client tracker.
	maxClients = 65536
	// maxUnsynced bounds the alerts waiting for the queue writer: beyond
	// it the capture goroutine appends them itself (back-pressure), so a
	// slow disk slows inspection rather than growing memory.
	maxUnsynced = 4096
)

// Config configures an Agent.
type Config struct {
	Zones      *inspect.Zones
	Store      *defs.Store
	FoldWindow time.Duration
	// Out, when set, receives alerts as JSON lines (offline mode).
	Out io.Writer
	// Queue, when set, receives alerts for the uplink (online mode).
	Queue           *queue.Queue
	FirmwareVersion string
	Logger          *slog.Logger
}

// Agent is one appliance's inspection side. Process is called by one
// capture goroutine; the other methods are safe to call concurrently.
type Agent struct {
	cfg    Config
	eng    *inspect.Engine
	log    *slog.Logger
	outW   *bufio.Writer
	outEnc *json.Encoder

	// Group commit: emit hands each alert to the queue writer at once;
	// the writer appends (write + fsync) everything handed over while
	// its previous fsync ran. See the package comment.
	qmu     sync.Mutex
	pending [][]byte // alerts handed over, not yet appended
	qerr    error    // first queue error
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	err     error // first output error (capture goroutine only)

	mu      sync.Mutex
	clients map[netip.Addr]time.Time
	statsMu sync.Mutex
	stats   inspect.Stats
	alerts  atomic.Uint64
	start   time.Time
	notifyQ chan struct{}
}

// New builds an Agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("agent: a definitions store is required")
	}
	if cfg.Out == nil && cfg.Queue == nil {
		return nil, fmt.Errorf("agent: set Out (offline) or Queue (online)")
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, clients: map[netip.Addr]time.Time{}, start: time.Now(),
		notifyQ: make(chan struct{}, 1), kick: make(chan struct{}, 1), stop: make(chan struct{}),
		stopped: make(chan struct{})}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Out != nil {
		a.outW = bufio.NewWriterSize(cfg.Out, 64<<10)
		a.outEnc = json.NewEncoder(a.outW)
		a.outEnc.SetEscapeHTML(false)
	}
	a.eng = inspect.New(inspect.Config{
		Zones: cfg.Zones, Defs: cfg.Store.Current, Emit: a.emit, FoldWindow: cfg.FoldWindow,
		Client: a.client,
	})
	if cfg.Queue != nil {
		go a.writer()
	} else {
		close(a.stopped)
	}
	return a, nil
}

func (a *Agent) emit(al *events.Alert) {
	al.Clamp() // oversized evidence must not make an alert the gateway refuses
	a.alerts.Add(1)
	if a.outEnc != nil {
		if err := a.outEnc.Encode(al); err != nil && a.err == nil {
			a.err = err
		}
	}
	if a.cfg.Queue == nil {
		return
	}
	b, err := json.Marshal(al)
	if err != nil {
		a.log.Error("agent: alert not encodable; dropped", "error", err)
		return
	}
	a.qmu.Lock()
	a.pending = append(a.pending, b)
	n := len(a.pending)
	a.qmu.Unlock()
	if n >= maxUnsynced {
		a.flushQueue()
		return
	}
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// writer is the queue's group committer: it appends whatever alerts were
// handed over since its last append, in one write and one fsync, until
// Close stops it.
func (a *Agent) writer() {
	defer close(a.stopped)
	for {
		select {
		case <-a.stop:
			return
		case <-a.kick:
			a.flushQueue()
		}
	}
}

// flushQueue appends the alerts handed over so far. A failed append keeps
// them in memory for the next attempt.
func (a *Agent) flushQueue() {
	a.qmu.Lock()
	defer a.qmu.Unlock()
	if len(a.pending) == 0 {
		return
	}
	if err := a.cfg.Queue.Append(a.pending); err != nil {
		a.log.Error("agent: queue append failed; alerts kept in memory", "error", err)
		if a.qerr == nil {
			a.qerr = err
		}
		return
	}
	a.pending = a.pending[:0]
	select {
	case a.notifyQ <- struct{}{}:
	default:
	}
}

// Process inspects one frame; it returns the block verdict.
func (a *Agent) Process(data []byte, ts time.Time, wireLen int) bool {
	block := a.eng.Process(data, ts, wireLen)
	return block
}

// Tick closes fold windows on a quiet link and publishes the counters.
// Call it from the capture goroutine.
func (a *Agent) Tick(now time.Time) {
	a.eng.Tick(now)
	a.publishStats()
}

// Close flushes every alert still folding to the output or the queue and
// stops the queue writer. Process must not be called after Close.
func (a *Agent) Close() error {
	a.eng.Flush()
	if a.cfg.Queue != nil {
		close(a.stop)
		<-a.stopped
		a.flushQueue()
	}
	a.publishStats()
	if a.outW != nil {
		if err := a.outW.Flush(); err != nil && a.err == nil {
			a.err = err
		}
	}
	if a.err != nil {
		return a.err
	}
	a.qmu.Lock()
	defer a.qmu.Unlock()
	if len(a.pending) > 0 {
		return fmt.Errorf("agent: %d alerts could not be queued: %w", len(a.pending), a.qerr)
	}
	return nil
}

func (a *Agent) publishStats() {
	s := a.eng.Stats()
	a.statsMu.Lock()
	a.stats = s
	a.statsMu.Unlock()
}

// Stats returns the engine counters as of the last Tick or Close.
func (a *Agent) Stats() inspect.Stats {
	a.statsMu.Lock()
	defer a.statsMu.Unlock()
	return a.stats
}

// Alerts is the number of alerts emitted so far.
func (a *Agent) Alerts() uint64 { return a.alerts.Load() }

// QueueNotify is signalled when alerts were appended to the queue.
func (a *Agent) QueueNotify() <-chan struct{} { return a.notifyQ }

func (a *Agent) client(addr netip.Addr, ts time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if last, ok := a.clients[addr]; ok {
		if ts.After(last) {
			a.clients[addr] = ts
		}
		return
	}
	if len(a.clients) >= maxClients {
		return
	}
	a.clients[addr] = ts
}

// Clients counts the client devices seen in the 24 hours before now, and
// forgets older ones.
func (a *Agent) Clients(now time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for k, t := range a.clients {
		if now.Sub(t) > 24*time.Hour {
			delete(a.clients, k)
			continue
		}
		n++
	}
	return n
}
