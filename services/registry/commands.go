package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
)

// Source is the CloudEvents source of events the operator commands write.
const Source = "mimamori/registry"

// Publisher writes events and returns once Kafka acknowledged them all
// (eventlog.Producer).
type Publisher interface {
	Publish(ctx context.Context, envs ...events.Envelope) error
}

// RegisterCustomer records a new customer and returns its ID ("cu_" + KSUID).
func RegisterCustomer(ctx context.Context, pub Publisher, name, email, reseller string, now time.Time) (string, error) {
	id := CustomerPrefix + ksuid.New().String()
	e, err := events.New(Source, &events.CustomerRegistered{
		CustomerID: id, Name: name, Email: email, ResellerID: reseller, RegisteredAt: now.UTC(),
	}, now)
	if err != nil {
		return "", fmt.Errorf("register customer: %w", err)
	}
	if err := pub.Publish(ctx, e); err != nil {
		return "", fmt.Errorf("register customer: %w", err)
	}
	return id, nil
}

// DeviceSpec describes an appliance being registered. CustomerID may be
// empty: the device is then registered but unassigned, and its credential
// is refused (403) until AssignDevice.
type DeviceSpec struct {
	Serial         string
	MAC            string
	Model          string
	ManufacturedOn string // 2026-04-01
	CustomerID     string
}

// Registration is the result of RegisterDevice. Credential is the only copy
// of the device's secret: hand it to the appliance, it cannot be recovered.
type Registration struct {
	DeviceID   string
	CustomerID string
	Credential string
}

// RegisterDevice records a new appliance ("dv_" + KSUID), assigns it to
// spec.CustomerID when given and issues its first credential, in one
// publish: the events share the device's key, hence its partition and order.
func RegisterDevice(ctx context.Context, pub Publisher, spec DeviceSpec, now time.Time) (Registration, error) {
	id := DevicePrefix + ksuid.New().String()
	reg := &events.DeviceRegistered{DeviceID: id, Serial: spec.Serial, MAC: strings.ToLower(spec.MAC),
		Model: spec.Model, ManufacturedOn: spec.ManufacturedOn, RegisteredAt: now.UTC()}
	payloads := []events.Payload{reg}
	if spec.CustomerID != "" {
		if !strings.HasPrefix(spec.CustomerID, CustomerPrefix) {
			return Registration{}, fmt.Errorf("register device: customer ID %q does not start with %s", spec.CustomerID, CustomerPrefix)
		}
		payloads = append(payloads, &events.DeviceAssigned{DeviceID: id, CustomerID: spec.CustomerID, AssignedAt: now.UTC()})
	}
	token, issued := NewCredential(id, now)
	payloads = append(payloads, &issued)
	envs, err := envelopes(now, payloads...)
	if err != nil {
		return Registration{}, fmt.Errorf("register device: %w", err)
	}
	if err := pub.Publish(ctx, envs...); err != nil {
		return Registration{}, fmt.Errorf("register device: %w", err)
	}
	return Registration{DeviceID: id, CustomerID: spec.CustomerID, Credential: token}, nil
}

// AssignDevice assigns a registered device to a customer. Assigning it to
// another customer than the one it serves revokes every credential issued
// to it before (see State.Apply): issue the new site's with
// IssueCredential.
func AssignDevice(ctx context.Context, pub Publisher, deviceID, customerID string, now time.Time) error {
	if !strings.HasPrefix(customerID, CustomerPrefix) {
		return fmt.Errorf("assign device: customer ID %q does not start with %s", customerID, CustomerPrefix)
	}
	envs, err := envelopes(now, &events.DeviceAssigned{DeviceID: deviceID, CustomerID: customerID, AssignedAt: now.UTC()})
	if err != nil {
		return fmt.Errorf("assign device: %w", err)
	}
	if err := pub.Publish(ctx, envs...); err != nil {
		return fmt.Errorf("assign device: %w", err)
	}
	return nil
}

// IssueCredential issues another credential for a registered device, for
// a replacement appliance or one whose credential leaked (revoke the old
// one with RevokeCredential once the new one is installed). The token is
// returned this once; only its hash is recorded.
func IssueCredential(ctx context.Context, pub Publisher, deviceID string, now time.Time) (token string, err error) {
	if !strings.HasPrefix(deviceID, DevicePrefix) {
		return "", fmt.Errorf("issue credential: device ID %q does not start with %s", deviceID, DevicePrefix)
	}
	token, issued := NewCredential(deviceID, now)
	envs, err := envelopes(now, &issued)
	if err != nil {
		return "", fmt.Errorf("issue credential: %w", err)
	}
	if err := pub.Publish(ctx, envs...); err != nil {
		return "", fmt.Errorf("issue credential: %w", err)
	}
	return token, nil
}

// RevokeCredential revokes a device credential for good.
func RevokeCredential(ctx context.Context, pub Publisher, deviceID, credentialID, reason string, now time.Time) error {
	if deviceID == "" || credentialID == "" {
		return errors.New("revoke credential: device ID and credential ID are required")
	}
	envs, err := envelopes(now, &events.DeviceCredentialRevoked{DeviceID: deviceID, CredentialID: credentialID,
		Reason: reason, RevokedAt: now.UTC()})
	if err != nil {
		return fmt.Errorf("revoke credential: %w", err)
	}
	if err := pub.Publish(ctx, envs...); err != nil {
		return fmt.Errorf("revoke credential: %w", err)
	}
	return nil
}

func envelopes(now time.Time, ps ...events.Payload) ([]events.Envelope, error) {
	envs := make([]events.Envelope, 0, len(ps))
	for _, p := range ps {
		e, err := events.New(Source, p, now)
		if err != nil {
			return nil, err
		}
		envs = append(envs, e)
	}
	return envs, nil
}

// RequestReboot records an operator's request that a device reboot
// and returns the request ID (a KSUID). Ingest hands the command over on
// the device's next heartbeat reply. The device ID must look like one
// ("dv_" + KSUID); whether it is registered is not checked here (this
// function only writes): a request for an ID that no credential
// authenticates as is never delivered.
func RequestReboot(ctx context.Context, pub Publisher, deviceID, requestedBy, reason string, now time.Time) (string, error) {
	rest, ok := strings.CutPrefix(deviceID, DevicePrefix)
	if !ok {
		return "", fmt.Errorf("request reboot: device ID %q does not start with %s", deviceID, DevicePrefix)
	}
	if _, err := ksuid.Parse(rest); err != nil {
		return "", fmt.Errorf("request reboot: malformed device ID %q", deviceID)
	}
	id := ksuid.New().String()
	envs, err := envelopes(now, &events.DeviceRebootRequested{DeviceID: deviceID, RequestID: id,
		RequestedBy: requestedBy, Reason: reason, RequestedAt: now.UTC()})
	if err != nil {
		return "", fmt.Errorf("request reboot: %w", err)
	}
	if err := pub.Publish(ctx, envs...); err != nil {
		return "", fmt.Errorf("request reboot: %w", err)
	}
	return id, nil
}
