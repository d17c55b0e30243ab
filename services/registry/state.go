// Package registry is the device registry: which appliances exist, which
// customer each one watches over, and which credentials let it talk to the
// ingest gateway. The state is rebuilt from the devices and accounts topics;
// the operator commands that change it publish events to those topics.
package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
)

// Authentication outcomes. The ingest gateway maps ErrUnauthenticated to
// 401 and ErrForbidden to 403.
var (
	// ErrUnauthenticated: the credential is malformed, unknown or revoked.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: the credential is valid but its device is not assigned
	// to a customer, so there is nobody its data could belong to.
	ErrForbidden = errors.New("forbidden")
)

// errUnknown is the miss that a catch-up of the log can cure; a revoked or
// malformed credential stays bad however long one waits.
var errUnknown = fmt.Errorf("%w: unknown credential", ErrUnauthenticated)

// ID prefixes; the rest of each ID is a KSUID.
const (
	CustomerPrefix   = "cu_"
	DevicePrefix     = "dv_"
	CredentialPrefix = "dc_"
)

const secretBytes = 32

// Device is what the registry knows about one appliance.
type Device struct {
	ID             string
	Serial         string
	MAC            string
	Model          string
	ManufacturedOn string
	RegisteredAt   time.Time
	CustomerID     string // "" while unassigned
}

// Customer is a known customer account. Personal data is not kept here.
type Customer struct {
	ID           string
	ResellerID   string
	RegisteredAt time.Time
}

type credential struct {
	deviceID string
	hash     [sha256.Size]byte
	issued   bool
	revoked  bool
}

// State is the registry rebuilt from events. Apply is called by one
// goroutine (the tail); any number of goroutines may read concurrently.
type State struct {
	mu        sync.RWMutex
	devices   map[string]*Device
	customers map[string]Customer
	creds     map[string]*credential
	// reboots holds, per device, the reboot request not yet delivered
	// (the latest one: a single reboot satisfies every earlier request).
	reboots map[string]string
	// delivered holds request IDs already delivered, so a request read
	// after its delivery record (replay from a mid-point) stays done.
	delivered map[string]bool
}

// NewState returns an empty registry.
func NewState() *State {
	return &State{devices: map[string]*Device{}, customers: map[string]Customer{}, creds: map[string]*credential{},
		reboots: map[string]string{}, delivered: map[string]bool{}}
}

// Apply folds one event into the state. Events of other types (the topics
// will carry more kinds over time) are ignored; applying the same event
// twice changes nothing. A revocation is final even if it arrives before
// the issue it revokes. Assigning a device to another customer than the
// one it serves revokes every credential issued to it before.
func (s *State) Apply(e events.Envelope) error {
	p, err := events.Decode(e)
	if errors.Is(err, events.ErrUnknownType) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch p := p.(type) {
	case *events.CustomerRegistered:
		s.customers[p.CustomerID] = Customer{ID: p.CustomerID, ResellerID: p.ResellerID, RegisteredAt: p.RegisteredAt}
	case *events.DeviceRegistered:
		d := s.device(p.DeviceID)
		d.Serial, d.MAC, d.Model, d.ManufacturedOn, d.RegisteredAt = p.Serial, p.MAC, p.Model, p.ManufacturedOn, p.RegisteredAt
	case *events.DeviceAssigned:
		d := s.device(p.DeviceID)
		if d.CustomerID != "" && d.CustomerID != p.CustomerID {
			s.revokeIssued(p.DeviceID)
		}
		d.CustomerID = p.CustomerID
	case *events.DeviceCredentialIssued:
		h, err := hex.DecodeString(p.SecretSHA256)
		if err != nil || len(h) != sha256.Size {
			return fmt.Errorf("registry: credential %s: bad secret_sha256", p.CredentialID)
		}
		c := s.cred(p.CredentialID)
		c.deviceID, c.issued = p.DeviceID, true
		copy(c.hash[:], h)
	case *events.DeviceCredentialRevoked:
		c := s.cred(p.CredentialID)
		if c.deviceID == "" {
			c.deviceID = p.DeviceID
		}
		c.revoked = true
	case *events.DeviceRebootRequested:
		if !s.delivered[p.RequestID] {
			s.reboots[p.DeviceID] = p.RequestID
		}
	case *events.DeviceCommandDelivered:
		s.delivered[p.RequestID] = true
		if s.reboots[p.DeviceID] == p.RequestID {
			delete(s.reboots, p.DeviceID)
		}
	}
	return nil
}

// PendingReboot returns the reboot request of a device that has not been
// delivered yet.
func (s *State) PendingReboot(deviceID string) (requestID string, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	requestID, ok = s.reboots[deviceID]
	return requestID, ok
}

// revokeIssued revokes every credential of a device issued so far: a
// device assigned to another customer must not go on accepting the
// credential its former site holds, or that site would report as the new
// customer. Credentials issued after the reassignment (later in the
// device's partition) are the new customer's.
func (s *State) revokeIssued(deviceID string) {
	for _, c := range s.creds {
		if c.deviceID == deviceID && c.issued {
			c.revoked = true
		}
	}
}

func (s *State) device(id string) *Device {
	d := s.devices[id]
	if d == nil {
		d = &Device{ID: id}
		s.devices[id] = d
	}
	return d
}

func (s *State) cred(id string) *credential {
	c := s.creds[id]
	if c == nil {
		c = &credential{}
		s.creds[id] = c
	}
	return c
}

// Device returns a copy of the device's record.
func (s *State) Device(id string) (Device, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.devices[id]
	if !ok {
		return Device{}, false
	}
	return *d, true
}

// Customer returns a known customer.
func (s *State) Customer(id string) (Customer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.customers[id]
	return c, ok
}

// ErrConflict is a registration that would duplicate what exists.
var ErrConflict = errors.New("conflict")

// CheckNewDevice says why spec cannot be registered: its customer is not
// registered, or its serial number or MAC address already belongs to a
// device (a second registration would issue a second working credential
// for one appliance). Serials compare exactly, MACs case-insensitively.
func (s *State) CheckNewDevice(spec DeviceSpec) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if spec.CustomerID != "" {
		if _, ok := s.customers[spec.CustomerID]; !ok {
			return fmt.Errorf("customer %s is not registered (mimamori customer register prints the ID)", spec.CustomerID)
		}
	}
	mac := strings.ToLower(spec.MAC)
	for _, d := range s.devices {
		switch {
		case d.Serial != "" && d.Serial == spec.Serial:
			return fmt.Errorf("%w: serial %s is already registered as device %s (mimamori device credential --device %s issues it a credential)",
				ErrConflict, spec.Serial, d.ID, d.ID)
		case d.MAC != "" && d.MAC == mac:
			return fmt.Errorf("%w: MAC %s is already registered as device %s (serial %s)", ErrConflict, mac, d.ID, d.Serial)
		}
	}
	return nil
}

// CredentialRevoked reports whether a credential exists and is revoked.
func (s *State) CredentialRevoked(credentialID string) (revoked, known bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.creds[credentialID]
	if !ok {
		return false, false
	}
	return c.revoked, c.issued
}

// Authenticate checks a device credential "<credential_id>.<secret>" and
// returns the device it belongs to and that device's customer. Errors wrap
// ErrUnauthenticated or ErrForbidden and never contain the secret.
func (s *State) Authenticate(token string) (deviceID, customerID string, err error) {
	id, secret, err := parseToken(token)
	if err != nil {
		return "", "", err
	}
	got := sha256.Sum256([]byte(secret))
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.creds[id]
	if !ok || !c.issued {
		// Compare anyway so an unknown ID costs what a known one costs.
		var zero [sha256.Size]byte
		subtle.ConstantTimeCompare(got[:], zero[:])
		if ok && c.revoked {
			return "", "", fmt.Errorf("%w: credential %s revoked", ErrUnauthenticated, id)
		}
		return "", "", errUnknown
	}
	if subtle.ConstantTimeCompare(got[:], c.hash[:]) != 1 {
		return "", "", fmt.Errorf("%w: credential %s: wrong secret", ErrUnauthenticated, id)
	}
	if c.revoked {
		return "", "", fmt.Errorf("%w: credential %s revoked", ErrUnauthenticated, id)
	}
	d := s.devices[c.deviceID]
	if d == nil || d.CustomerID == "" {
		return c.deviceID, "", fmt.Errorf("%w: device %s is not assigned to a customer", ErrForbidden, c.deviceID)
	}
	return d.ID, d.CustomerID, nil
}

// parseToken splits and checks the shape of a credential, so garbage never
// reaches the table.
func parseToken(token string) (id, secret string, err error) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || !strings.HasPrefix(id, CredentialPrefix) {
		return "", "", fmt.Errorf("%w: malformed credential (want dc_<id>.<secret>)", ErrUnauthenticated)
	}
	if _, err := ksuid.Parse(id[len(CredentialPrefix):]); err != nil {
		return "", "", fmt.Errorf("%w: malformed credential id", ErrUnauthenticated)
	}
	if b, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(b) != secretBytes {
		return "", "", fmt.Errorf("%w: malformed credential secret", ErrUnauthenticated)
	}
	return id, secret, nil
}

// NewCredential makes a credential for a device: the token to hand to the
// appliance (shown once, never stored) and the event that records its
// SHA-256. The token is "dc_<KSUID>.<secret>", the secret 32 random bytes
// in unpadded base64url; the hash is over the secret's text as it appears
// in the token.
func NewCredential(deviceID string, now time.Time) (token string, issued events.DeviceCredentialIssued) {
	b := make([]byte, secretBytes)
	rand.Read(b) // never fails (Go 1.24+: it crashes the program instead)
	secret := base64.RawURLEncoding.EncodeToString(b)
	id := CredentialPrefix + ksuid.New().String()
	sum := sha256.Sum256([]byte(secret))
	return id + "." + secret, events.DeviceCredentialIssued{
		DeviceID:     deviceID,
		CredentialID: id,
		SecretSHA256: hex.EncodeToString(sum[:]),
		IssuedAt:     now.UTC(),
	}
}

// CredentialID returns the non-secret part of a token, for logs; "" when
// the token is malformed.
func CredentialID(token string) string {
	id, _, err := parseToken(token)
	if err != nil {
		return ""
	}
	return id
}
