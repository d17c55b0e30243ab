package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/services/registry"
)

const ctxDevice = "mimamori.device"

func (s *server) handleAlerts(c *gin.Context) {
	who, err := s.authenticate(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	now := s.cfg.Now()
	// A device over its limit is refused before its body is even read.
	if wait := s.limit.check(who.deviceID, 1, now); wait > 0 {
		s.writeError(c, s.throttled(wait))
		return
	}
	body, err := readBody(c.Request, s.cfg)
	if err != nil {
		s.writeError(c, err)
		return
	}
	batch, err := decodeAlerts(body, who, now, s.cfg)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if wait := s.limit.take(who.deviceID, len(batch.envs)+batch.duplicates, now); wait > 0 {
		s.writeError(c, s.throttled(wait))
		return
	}
	fresh, sums, resent, err := s.index.sort(who.deviceID, batch)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if len(fresh) > 0 {
		if err := s.publish(c.Request.Context(), fresh); err != nil {
			s.writeError(c, err)
			return
		}
		ids := make([]string, len(fresh))
		for i, e := range fresh {
			ids[i] = e.ID
		}
		s.index.learn(who.deviceID, ids, sums, now)
	}
	s.metrics.alertsAccepted.Add(float64(len(fresh)))
	s.metrics.duplicates.Add(float64(batch.duplicates))
	s.metrics.resent.Add(float64(resent))
	reply := gin.H{"accepted": len(fresh)}
	if resent > 0 {
		reply["duplicates"] = resent
	}
	c.JSON(http.StatusAccepted, reply)
}

// throttled is the 429 of a device over its alert rate.
func (s *server) throttled(wait time.Duration) error {
	return &apiError{kind: kindTooMany, retryAfter: wait, msg: fmt.Sprintf(
		"too many alerts from this device: at most %g a second on average, %d at once; nothing was accepted, send them again after Retry-After",
		s.cfg.DeviceRate, s.cfg.DeviceBurst)}
}

func (s *server) handleHeartbeat(c *gin.Context) {
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
	env, err := decodeHeartbeat(body, who, s.cfg.Now(), s.cfg)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if err := s.publish(c.Request.Context(), []events.Envelope{env}); err != nil {
		s.writeError(c, err)
		return
	}
	s.metrics.heartbeatsAccepted.Inc()
	cmds := s.commandsFor(env)
	if s.deliverReboot(c.Request.Context(), who.deviceID) {
		cmds = append(cmds, CommandReboot)
	}
	c.JSON(http.StatusAccepted, gin.H{"commands": cmds})
}

func (s *server) handleHealthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (s *server) handleReadyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.pub.Ping(ctx); err != nil {
		s.writeError(c, &apiError{kind: kindUnavailable, msg: "kafka does not answer", cause: err})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// authenticate reads the bearer credential. The token is passed on, never
// logged or echoed.
func (s *server) authenticate(c *gin.Context) (identity, error) {
	h := c.GetHeader("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h == "" || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return identity{}, errorf(kindUnauthenticated, "", "missing credential: send Authorization: Bearer <credential>")
	}
	dev, cust, err := s.auth.Authenticate(c.Request.Context(), token)
	switch {
	case err == nil:
		c.Set(ctxDevice, dev)
		return identity{deviceID: dev, customerID: cust}, nil
	case errors.Is(err, registry.ErrUnauthenticated):
		return identity{}, &apiError{kind: kindUnauthenticated, msg: "invalid credential (unknown, malformed or revoked)", cause: err}
	case errors.Is(err, registry.ErrForbidden):
		c.Set(ctxDevice, dev)
		return identity{}, &apiError{kind: kindForbidden, msg: "this device is not assigned to a customer yet", cause: err}
	}
	return identity{}, &apiError{kind: kindUnavailable, msg: "cannot check credentials right now", cause: err}
}

// publish waits for Kafka to acknowledge every envelope, at most
// PublishTimeout. On failure some may have been written: the appliance
// sends again with the same ids and the projections drop the repeats.
func (s *server) publish(ctx context.Context, envs []events.Envelope) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	start := time.Now()
	err := s.pub.Publish(ctx, envs...)
	s.metrics.observePublish(start, err)
	if err != nil {
		return &apiError{kind: kindUnavailable, msg: "could not store the events; nothing was accepted, send them again later", cause: err}
	}
	return nil
}
