package events

import "time"

// Remote commands to one appliance: an operator asks, ingest hands
// the command over on the device's next heartbeat reply and records that.
const (
	TypeDeviceRebootRequested  = "mimamori.device.reboot_requested.v1"
	TypeDeviceCommandDelivered = "mimamori.device.command_delivered.v1"
	DeviceCommandReboot        = "reboot"
)

// DeviceRebootRequested records an operator's request that an appliance
// reboot. It stays pending until a DeviceCommandDelivered with the same
// request_id is recorded.
type DeviceRebootRequested struct {
	DeviceID    string    `json:"device_id"`
	RequestID   string    `json:"request_id"` // KSUID
	RequestedBy string    `json:"requested_by"`
	Reason      string    `json:"reason"`
	RequestedAt time.Time `json:"requested_at"`
}

func (*DeviceRebootRequested) EventType() string { return TypeDeviceRebootRequested }
func (*DeviceRebootRequested) Topic() string     { return TopicDevices }
func (r *DeviceRebootRequested) Key() string     { return r.DeviceID }
func (r *DeviceRebootRequested) Validate() error {
	var v validator
	v.required("device_id", r.DeviceID)
	v.max("device_id", r.DeviceID, maxShort)
	v.ksuid("request_id", r.RequestID)
	v.required("requested_by", r.RequestedBy)
	v.max("requested_by", r.RequestedBy, maxShort)
	v.max("reason", r.Reason, maxShort)
	v.time("requested_at", r.RequestedAt)
	return v.err()
}

// DeviceCommandDelivered records that ingest put a command in a heartbeat
// reply to the device. Delivery is at least once: two ingest instances may
// both deliver one request before either has read the other's record.
type DeviceCommandDelivered struct {
	DeviceID    string    `json:"device_id"`
	RequestID   string    `json:"request_id"`
	Command     string    `json:"command"`
	DeliveredAt time.Time `json:"delivered_at"`
}

func (*DeviceCommandDelivered) EventType() string { return TypeDeviceCommandDelivered }
func (*DeviceCommandDelivered) Topic() string     { return TopicDevices }
func (d *DeviceCommandDelivered) Key() string     { return d.DeviceID }
func (d *DeviceCommandDelivered) Validate() error {
	var v validator
	v.required("device_id", d.DeviceID)
	v.max("device_id", d.DeviceID, maxShort)
	v.ksuid("request_id", d.RequestID)
	v.required("command", d.Command)
	v.max("command", d.Command, maxShort)
	v.time("delivered_at", d.DeliveredAt)
	return v.err()
}
