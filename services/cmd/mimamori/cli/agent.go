package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mimamori/mimamori/appliance/agent"
	"github.com/mimamori/mimamori/appliance/capture"
	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/appliance/inspect"
	"github.com/mimamori/mimamori/appliance/queue"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
)

// errRebootRequested ends the agent when the cloud sends "reboot": the
// agent flushes and exits, and the appliance's supervisor starts it again.
var errRebootRequested = errors.New("reboot requested by the cloud")

// agentCmd is the appliance agent: capture from files or an interface,
// inspect, and write alerts as JSON lines (offline) or queue and send them
// to the ingest gateway (uplink mode).
type agentCmd struct {
	Read           []string      `sep:"none" placeholder:"FILE" help:"pcap or pcapng file to inspect (repeat for several; further file names may follow the flags)"`
	Files          []string      `arg:"" optional:"" sep:"none" help:"more pcap or pcapng files to inspect"`
	Zone           []string      `sep:"none" placeholder:"ZONE=CIDR,…" help:"zone CIDRs: lan=CIDR,…, ssid1=CIDR,…, ssid2=CIDR,… (repeat; vlan:ID allowed; WAN is everything else)"`
	Speed          string        `default:"fast" help:"file replay speed: fast or recorded"`
	Interface      string        `help:"capture live from this interface (AF_PACKET, needs CAP_NET_RAW)"`
	Defs           string        `help:"definitions bundle to start with"`
	DefsPub        []string      `name:"defs-pub" sep:"none" placeholder:"KEY" help:"public key file (one key or a key ring) the definitions must be signed with; repeat for several. Once a bundle is in use, the keys it names are trusted instead (key rotation, see appliance/README.md)"`
	Out            string        `help:"write alerts as JSON lines to this file, or - for stdout (offline mode; in uplink mode a local copy)"`
	Cloud          string        `help:"ingest gateway URL (uplink mode), e.g. https://ingest.example:8443"`
	CredentialFile string        `name:"credential-file" help:"file holding the device credential (uplink mode)"`
	CAFile         string        `name:"ca-file" help:"CA certificate of the ingest gateway (uplink mode; default: system roots)"`
	QueueDir       string        `name:"queue-dir" help:"folder of the on-disk alert queue (uplink mode)"`
	QueueMaxBytes  int64         `name:"queue-max-bytes" default:"${queue_max_bytes}" help:"size limit of the queue on disk; when full the oldest alerts are dropped and a gap record is sent"`
	FoldWindow     time.Duration `default:"${fold_window}" help:"repeats of one detection within this window fold into one alert with a count"`
	HeartbeatEvery time.Duration `default:"${heartbeat_every}" help:"heartbeat interval (uplink mode)"`
	DefsPollEvery  time.Duration `name:"defs-poll-every" default:"${defs_poll_every}" help:"definitions poll interval (uplink mode)"`
	Settings
}

func (agentCmd) groups() []config.Group { return logGroups() }

func (c agentCmd) run(ctx context.Context, e *env) error {
	reads := slices.Concat(c.Read, c.Files)
	switch {
	case len(reads) == 0 && c.Interface == "":
		return usageError{"agent: give --read FILE… or --interface IF"}
	case len(reads) > 0 && c.Interface != "":
		return usageError{"agent: give --read or --interface, not both"}
	case c.Speed != "fast" && c.Speed != "recorded":
		return usageError{"agent: --speed is fast or recorded"}
	case len(c.DefsPub) == 0:
		return usageError{"agent: --defs-pub is required (definitions are only used when their signature verifies)"}
	case c.Cloud == "" && c.Out == "":
		return usageError{"agent: give --out FILE|- (offline) or --cloud URL (uplink)"}
	case c.Cloud == "" && c.Defs == "":
		return usageError{"agent: offline mode needs --defs BUNDLE"}
	case c.Cloud != "" && (c.CredentialFile == "" || c.QueueDir == ""):
		return usageError{"agent: uplink mode needs --credential-file and --queue-dir"}
	}
	z, err := inspect.ParseZones(c.Zone)
	if err != nil {
		return usageError{"agent: " + err.Error()}
	}
	ring, err := defs.LoadKeyRing(c.DefsPub...)
	if err != nil {
		return fmt.Errorf("agent: --defs-pub: %w", err)
	}
	// In uplink mode the definitions in use are kept beside the queue, so
	// a restart goes on with the newest verified set (and refuses older).
	storePath := ""
	if c.Cloud != "" {
		storePath = filepath.Join(c.QueueDir, "definitions", "current.bundle")
	}
	store, err := defs.NewStore(defs.StoreConfig{Keys: ring, Path: storePath})
	if err != nil {
		return err
	}
	var loadTook time.Duration
	if c.Defs != "" {
		loadStart := time.Now()
		b, err := os.ReadFile(c.Defs)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		switch _, err := store.Install(b); {
		case err == nil, errors.Is(err, defs.ErrSame):
		case errors.Is(err, defs.ErrRollback) && store.Version() > 0:
			e.log.Warn("agent: --defs is older than the definitions kept from before; keeping those", "in_use", store.Version())
		case errors.Is(err, defs.ErrExpired) && store.Version() > 0:
			e.log.Warn("agent: --defs refused; keeping the definitions kept from before", "in_use", store.Version(), "error", err)
		default:
			return fmt.Errorf("agent: --defs %s: %w", c.Defs, err)
		}
		loadTook = time.Since(loadStart)
	}

	var outW io.Writer
	summaryW := e.out
	if c.Out == "-" {
		outW, summaryW = e.out, e.errOut
	} else if c.Out != "" {
		f, err := os.OpenFile(c.Out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		defer f.Close()
		outW = f
	}
	var q *queue.Queue
	if c.Cloud != "" {
		if q, err = queue.Open(c.QueueDir, queue.Config{MaxBytes: c.QueueMaxBytes}); err != nil {
			return err
		}
		defer q.Close()
	}
	a, err := agent.New(agent.Config{Zones: z, Store: store, FoldWindow: c.FoldWindow, Out: outW, Queue: q,
		FirmwareVersion: Version, Logger: e.log})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cloudDone := make(chan error, 1)
	cloudCtx, stopCloud := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCloud()
	var up *agent.Cloud
	if c.Cloud != "" {
		cred, err := os.ReadFile(c.CredentialFile)
		if err != nil {
			return fmt.Errorf("agent: credential: %w", err)
		}
		up, err = agent.NewCloud(agent.CloudConfig{BaseURL: c.Cloud, Credential: strings.TrimSpace(string(cred)), CAFile: c.CAFile,
			Queue: q, Store: store, Agent: a, HeartbeatEvery: c.HeartbeatEvery, PollEvery: c.DefsPollEvery, Firmware: Version,
			Reboot: func() { cancel(errRebootRequested) }, Logger: e.log})
		if err != nil {
			return err
		}
		defer up.Close()
		go func() { cloudDone <- up.Run(cloudCtx) }()
	} else {
		close(cloudDone)
	}

	start := time.Now()
	var skipped uint64
	var capErr error
	if c.Interface != "" {
		var st capture.LiveStats
		st, capErr = capture.Live(ctx, c.Interface, 0, func(d []byte, ts time.Time, wire int) { a.Process(d, ts, wire) }, a.Tick)
		if st.Dropped > 0 {
			e.log.Warn("agent: the kernel dropped frames the agent was too slow for", "dropped", st.Dropped)
		}
	} else {
		var st capture.FileStats
		st, capErr = capture.ReadFiles(ctx, reads, c.Speed == "recorded", func(d []byte, ts time.Time, wire int) { a.Process(d, ts, wire) }, a.Tick)
		skipped = st.Skipped
	}
	elapsed := time.Since(start)
	closeErr := a.Close()
	s := a.Stats()
	pps := float64(s.Packets) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(summaryW, "agent: packets %d, bytes %d, alerts %d, skipped frames %d, %.0f packets/s (%s)\n",
		s.Packets, s.Bytes, a.Alerts(), skipped+s.Skipped, pps, elapsed.Round(time.Millisecond))
	if loadTook > 0 {
		fmt.Fprintf(summaryW, "agent: definitions version %d loaded in %.1fms (read, verify, decompress, compile)\n",
			store.Version(), float64(loadTook.Microseconds())/1000)
	}
	if capErr != nil && !errors.Is(capErr, context.Canceled) {
		stopCloud()
		return capErr
	}
	if closeErr != nil {
		stopCloud()
		return closeErr
	}
	if c.Cloud != "" && ctx.Err() == nil {
		// Files are done: stay until the cloud has everything, or a signal.
		fmt.Fprintf(summaryW, "agent: sending %d queued alerts to %s\n", q.Depth(), c.Cloud)
		for ctx.Err() == nil && (q.Depth() > 0 || len(q.Gaps()) > 0) {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		if ctx.Err() == nil {
			fmt.Fprintln(summaryW, "agent: queue empty, every alert acknowledged")
			// A last heartbeat: the cloud sees the final counters, and a
			// command waiting for this appliance (a reboot) is not missed
			// because the queue drained before the first reply came back.
			up.Heartbeat(ctx)
		}
	}
	stopCloud()
	<-cloudDone
	if errors.Is(context.Cause(ctx), errRebootRequested) {
		return errRebootRequested
	}
	return nil
}
