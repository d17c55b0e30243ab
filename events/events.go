// Package events holds the facts of mimamori: the CloudEvents envelope, the
// hand-written type names and topics, and the payload types with their
// validation. It imports no infrastructure; the Kafka binding lives in
// events/eventlog. The Go payload types are the contract: the registry of
// types and the JSON Schemas in schemas/events are generated from them
// (see README.md).
package events

//go:generate go run ./internal/registrygen
//go:generate go run ./internal/schemagen

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/ksuid"
)

// SpecVersion is the CloudEvents version of every envelope.
const SpecVersion = "1.0"

// ContentTypeJSON is the datacontenttype of every payload.
const ContentTypeJSON = "application/json"

// Event type names. They are written by hand and never derived from Go type
// names: renaming a Go type must not change the log. A change that removes
// or renames a field is a new version; old versions stay decodable forever.
const (
	TypeCustomerRegistered      = "mimamori.customer.registered.v1"
	TypeDeviceRegistered        = "mimamori.device.registered.v1"
	TypeDeviceAssigned          = "mimamori.device.assigned.v1"
	TypeDeviceCredentialIssued  = "mimamori.device.credential_issued.v1"
	TypeDeviceCredentialRevoked = "mimamori.device.credential_revoked.v1"
	TypeAlertDetected           = "mimamori.alert.detected.v1"
	TypeHeartbeatReceived       = "mimamori.heartbeat.received.v1"
)

// Topic base names; a deployment may put a prefix in front (see Topics).
const (
	TopicAlerts        = "appliance.alerts"
	TopicHeartbeats    = "appliance.heartbeats"
	TopicDevices       = "devices"
	TopicContracts     = "contracts"
	TopicAccounts      = "accounts"
	TopicInsurance     = "insurance"
	TopicNotifications = "notifications"
	TopicOperations    = "operations"
	TopicSupport       = "support"
)

// AllTopics lists every topic base name, in a stable order.
func AllTopics() []string {
	return []string{TopicAlerts, TopicHeartbeats, TopicDevices, TopicContracts, TopicAccounts,
		TopicInsurance, TopicNotifications, TopicOperations, TopicSupport}
}

// Payload is the data of one event type.
type Payload interface {
	// EventType is the hand-written, versioned type name. Its body is
	// `return TypeX`, the constant: registrygen reads it from the source.
	EventType() string
	// Topic is the base name of the topic the event belongs to.
	Topic() string
	// Key is the aggregate the event belongs to: the partition key that
	// keeps its events in order.
	Key() string
	// Validate says what is wrong with the payload, naming the field.
	Validate() error
}

// KnownTypes lists every event type this build can decode, in a stable
// order. It is derived from the Go types with an EventType method (see
// registry_gen.go), never kept by hand.
func KnownTypes() []string { return knownTypes() }

// NewPayload returns an empty payload of a known event type, for a caller
// that needs its Go type (a schema, a decoder of its own).
func NewPayload(typ string) (Payload, bool) { return newPayload(typ) }

// Envelope is one event: the CloudEvents 1.0 attributes and the JSON payload.
type Envelope struct {
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	SpecVersion     string          `json:"specversion"`
	Time            time.Time       `json:"time"`
	Subject         string          `json:"subject,omitempty"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// New wraps a payload in an envelope. The id is a fresh KSUID unless the
// payload carries its own (alerts and heartbeats get theirs on the
// appliance, so a resent one keeps its id).
func New(source string, p Payload, now time.Time) (Envelope, error) {
	if err := p.Validate(); err != nil {
		return Envelope{}, fmt.Errorf("%s: %w", p.EventType(), err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	// The schema is the published contract: nothing that breaks it enters
	// the log, whichever door it came in by (ingest, portal, CLI).
	if err := checkContract(p); err != nil {
		return Envelope{}, fmt.Errorf("%s: %w", p.EventType(), err)
	}
	id := ksuid.New().String()
	if o, ok := p.(interface{ EventID() string }); ok && o.EventID() != "" {
		id = o.EventID()
	}
	return Envelope{
		ID:              id,
		Source:          source,
		Type:            p.EventType(),
		SpecVersion:     SpecVersion,
		Time:            now.UTC(),
		Subject:         p.Key(),
		DataContentType: ContentTypeJSON,
		Data:            data,
	}, nil
}

// ErrUnknownType is returned for an event type this build does not know.
var ErrUnknownType = errors.New("unknown event type")

// Decode returns the typed, validated payload of an envelope.
func Decode(e Envelope) (Payload, error) {
	p, ok := newPayload(e.Type)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, e.Type)
	}
	if e.SpecVersion != SpecVersion {
		return nil, fmt.Errorf("event %s: specversion %q, want %q", e.ID, e.SpecVersion, SpecVersion)
	}
	if err := json.Unmarshal(e.Data, p); err != nil {
		return nil, fmt.Errorf("event %s (%s): decode data: %w", e.ID, e.Type, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("event %s (%s): %w", e.ID, e.Type, err)
	}
	return p, nil
}

// TopicOf returns the base topic name of an event type.
func TopicOf(typ string) (string, bool) {
	p, ok := newPayload(typ)
	if !ok {
		return "", false
	}
	return p.Topic(), true
}
