package events

import "time"

// TypeAlertsDropped names the gap record of an appliance whose full
// on-disk queue dropped alerts before the cloud had them.
const TypeAlertsDropped = "mimamori.alert.dropped.v1"

// AlertsDropped is a gap record: the exact number of alerts an appliance
// dropped unsent because its queue was full, so the loss is visible in
// the log instead of silent. The appliance makes the id; a resent gap
// record keeps it.
type AlertsDropped struct {
	ID         string    `json:"id" schema:"pattern=^[0-9A-Za-z]{27}$"`
	DeviceID   string    `json:"device_id"`
	CustomerID string    `json:"customer_id"`
	Dropped    uint64    `json:"dropped" schema:"minimum=1"`
	DroppedAt  time.Time `json:"dropped_at"`
	ReceivedAt time.Time `json:"received_at"`
}

func (*AlertsDropped) EventType() string           { return TypeAlertsDropped }
func (*AlertsDropped) Topic() string               { return TopicAlerts }
func (d *AlertsDropped) Key() string               { return d.DeviceID }
func (d *AlertsDropped) EventID() string           { return d.ID }
func (d *AlertsDropped) Validate() error           { return d.validate(true) }
func (d *AlertsDropped) ValidateFromDevice() error { return d.validate(false) }

func (d *AlertsDropped) validate(stamped bool) error {
	var v validator
	v.ksuid("id", d.ID)
	if stamped {
		v.required("device_id", d.DeviceID)
		v.required("customer_id", d.CustomerID)
		v.time("received_at", d.ReceivedAt)
	}
	v.max("device_id", d.DeviceID, maxShort)
	v.max("customer_id", d.CustomerID, maxShort)
	if d.Dropped == 0 {
		v.fail("dropped", "must be at least 1")
	}
	v.time("dropped_at", d.DroppedAt)
	return v.err()
}
