package agent

import "context"

// Heartbeat sends one heartbeat and acts on the reply, as the heartbeat
// loop of Run does every HeartbeatEvery.
func (c *Cloud) Heartbeat(ctx context.Context) { c.heartbeat(ctx) }
