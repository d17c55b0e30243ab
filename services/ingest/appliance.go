package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/events"
)

// LatestBundle is the file name of the bundle devices are served, inside
// Config.DefinitionsDir; `mimamori defs publish` replaces it atomically.
const LatestBundle = "latest.bundle"

// bundleCache keeps the bytes of the latest bundle, re-read when the
// file changes, so a thousand polling appliances cost one read. A change
// is a different file (publish renames a new one into place), size or
// modification time: two bundles of one size published within the file
// system's timestamp granularity differ only in the file.
type bundleCache struct {
	mu      sync.Mutex
	path    string
	st      os.FileInfo
	mod     time.Time
	size    int64
	data    []byte
	etag    string
	version string
}

func (b *bundleCache) get() (data []byte, etag, version string, err error) {
	st, err := os.Stat(b.path)
	if err != nil {
		return nil, "", "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.data != nil && os.SameFile(st, b.st) && st.ModTime().Equal(b.mod) && st.Size() == b.size {
		return b.data, b.etag, b.version, nil
	}
	f, err := os.Open(b.path)
	if err != nil {
		return nil, "", "", err
	}
	defer f.Close()
	// The file read, not the one stat saw: a publish in between must
	// not pair the new bytes with the old file's identity.
	if st, err = f.Stat(); err != nil {
		return nil, "", "", err
	}
	d, err := io.ReadAll(f)
	if err != nil {
		return nil, "", "", err
	}
	b.st = st
	sum := sha256.Sum256(d)
	b.data, b.mod, b.size = d, st.ModTime(), st.Size()
	b.etag = `"` + hex.EncodeToString(sum[:16]) + `"`
	b.version = bundleVersion(d)
	return b.data, b.etag, b.version, nil
}

// bundleVersion reads the version from a bundle's header line when the
// publisher wrote it there ("… version=N"); ingest does not parse
// bundles, the appliance verifies them.
func bundleVersion(d []byte) string {
	if i := strings.IndexByte(string(d[:min(len(d), 512)]), '\n'); i > 0 {
		for _, f := range strings.Fields(string(d[:i])) {
			if v, ok := strings.CutPrefix(f, "version="); ok {
				return v
			}
		}
	}
	return ""
}

// handleDefinitions serves the latest definitions bundle to a device, with
// ETag / If-None-Match so an up-to-date device gets 304 and no body.
func (s *server) handleDefinitions(c *gin.Context) {
	if _, err := s.authenticate(c); err != nil {
		s.writeError(c, err)
		return
	}
	if s.bundles == nil {
		s.writeError(c, errorf(kindNotFound, "", "no definitions are published"))
		return
	}
	data, etag, version, err := s.bundles.get()
	if errors.Is(err, os.ErrNotExist) {
		s.writeError(c, errorf(kindNotFound, "", "no definitions are published"))
		return
	}
	if err != nil {
		s.writeError(c, &apiError{kind: kindUnavailable, msg: "cannot read the definitions", cause: err})
		return
	}
	c.Header("ETag", etag)
	c.Header("Cache-Control", "no-cache")
	if version != "" {
		c.Header("X-Definitions-Version", version)
	}
	for _, t := range strings.Split(c.GetHeader("If-None-Match"), ",") {
		if strings.TrimSpace(t) == etag {
			c.Status(http.StatusNotModified)
			return
		}
	}
	c.Header("Content-Length", strconv.Itoa(len(data)))
	c.Data(http.StatusOK, "application/octet-stream", data)
}

// handleGap records a gap: alerts an appliance dropped unsent because its
// queue was full.
func (s *server) handleGap(c *gin.Context) {
	who, err := s.authenticate(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	body, err := readBody(c.Request, s.cfg)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var g events.AlertsDropped
	if err := decodeStrict(body, &g, ""); err != nil {
		s.writeError(c, err)
		return
	}
	if err := checkFromDevice(g.ValidateFromDevice(), ""); err != nil {
		s.writeError(c, err)
		return
	}
	if err := checkSender(g.DeviceID, g.CustomerID, who, ""); err != nil {
		s.writeError(c, err)
		return
	}
	now := s.cfg.Now()
	g.DeviceID, g.CustomerID, g.ReceivedAt = who.deviceID, who.customerID, now.UTC()
	env, err := events.New(Source, &g, now)
	if err != nil {
		s.writeError(c, &apiError{kind: kindBadRequest, msg: err.Error(), cause: err})
		return
	}
	if err := s.publish(c.Request.Context(), []events.Envelope{env}); err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"accepted": 1})
}

func newBundleCache(dir string) *bundleCache {
	if dir == "" {
		return nil
	}
	return &bundleCache{path: filepath.Join(dir, LatestBundle)}
}

// Heartbeat commands an appliance acts on.
const (
	CommandFetchDefinitions = "fetch-definitions"
	CommandReboot           = "reboot"
)

// commandsFor tells a device to fetch definitions when its heartbeat names
// an older version than the one published.
func (s *server) commandsFor(env events.Envelope) []string {
	cmds := []string{}
	if s.bundles == nil {
		return cmds
	}
	_, _, latest, err := s.bundles.get()
	if err != nil || latest == "" {
		return cmds
	}
	var hb struct {
		DefinitionsVersion string `json:"definitions_version"`
	}
	if json.Unmarshal(env.Data, &hb) != nil {
		return cmds
	}
	have, err1 := strconv.ParseUint(hb.DefinitionsVersion, 10, 64)
	want, err2 := strconv.ParseUint(latest, 10, 64)
	if err2 == nil && (err1 != nil || have < want) {
		cmds = append(cmds, CommandFetchDefinitions)
	}
	return cmds
}

// deliverReboot reports whether the heartbeat reply should carry "reboot":
// the device has an undelivered reboot request and the delivery
// record (mimamori.device.command_delivered.v1) is written. The record is
// published before the reply, so a device is never told to reboot without
// it; if it cannot be written the reply leaves "reboot" out and a later
// heartbeat tries again.
//
// Delivery is at least once, not exactly once: each ingest instance knows
// of a delivery from its own tail of the devices topic (and, at once, of
// the ones it made itself). Two instances answering heartbeats of one
// device within the time it takes to read the other's record may both
// deliver one request; the appliance then reboots a second time at most.
func (s *server) deliverReboot(ctx context.Context, deviceID string) bool {
	if s.cmds == nil {
		return false
	}
	reqID, ok := s.cmds.PendingReboot(deviceID)
	if !ok {
		return false
	}
	now := s.cfg.Now()
	env, err := events.New(Source, &events.DeviceCommandDelivered{DeviceID: deviceID, RequestID: reqID,
		Command: events.DeviceCommandReboot, DeliveredAt: now.UTC()}, now)
	if err != nil {
		s.log.Error("ingest: reboot delivery record", "device", deviceID, "request", reqID, "err", err)
		return false
	}
	if err := s.publish(ctx, []events.Envelope{env}); err != nil {
		s.log.Warn("ingest: reboot not delivered: cannot record the delivery", "device", deviceID, "request", reqID, "err", err)
		return false
	}
	if err := s.cmds.CommandDelivered(env); err != nil {
		s.log.Warn("ingest: delivery record not applied locally", "device", deviceID, "request", reqID, "err", err)
	}
	s.log.Info("ingest: reboot delivered", "device", deviceID, "request", reqID)
	return true
}
