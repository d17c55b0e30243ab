package registry

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
)

func apply(t *testing.T, s *State, ps ...events.Payload) {
	t.Helper()
	for _, p := range ps {
		e, err := events.New("test", p, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewCredentialFormat(t *testing.T) {
	token, issued := NewCredential("dv_1", time.Now())
	id, secret, ok := strings.Cut(token, ".")
	if !ok || id != issued.CredentialID || !strings.HasPrefix(id, "dc_") || len(id) != 3+27 {
		t.Fatalf("token %q does not look like dc_<KSUID>.<secret> with id %s", token, issued.CredentialID)
	}
	if len(secret) != 43 || strings.ContainsAny(secret, "+/=") {
		t.Fatalf("secret %q is not 32 bytes of unpadded base64url", secret)
	}
	if err := issued.Validate(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(issued.SecretSHA256, secret) {
		t.Fatal("the issued event carries the secret")
	}
}

func TestAuthenticate(t *testing.T) {
	now := time.Now()
	s := NewState()
	assigned, issuedA := NewCredential("dv_a", now)
	unassigned, issuedB := NewCredential("dv_b", now)
	revoked, issuedC := NewCredential("dv_a", now)
	early, issuedD := NewCredential("dv_a", now)
	unknown, _ := NewCredential("dv_a", now)
	apply(t, s,
		&events.CustomerRegistered{CustomerID: "cu_1", Name: "Kato Bakery", Email: "k@example.com", RegisteredAt: now},
		&events.DeviceRegistered{DeviceID: "dv_a", Serial: "S1", MAC: "00:11:22:33:44:55", Model: "M1", ManufacturedOn: "2026-04-01", RegisteredAt: now},
		&events.DeviceAssigned{DeviceID: "dv_a", CustomerID: "cu_1", AssignedAt: now},
		&issuedA,
		&events.DeviceRegistered{DeviceID: "dv_b", Serial: "S2", MAC: "00:11:22:33:44:56", Model: "M1", ManufacturedOn: "2026-04-01", RegisteredAt: now},
		&issuedB,
		&issuedC,
		&events.DeviceCredentialRevoked{DeviceID: "dv_a", CredentialID: issuedC.CredentialID, RevokedAt: now},
		// A revocation read before its issue still wins.
		&events.DeviceCredentialRevoked{DeviceID: "dv_a", CredentialID: issuedD.CredentialID, RevokedAt: now},
		&issuedD,
	)
	wrongSecret := issuedA.CredentialID + "." + strings.Repeat("A", 43)
	tests := []struct {
		name, token      string
		device, customer string
		want             error
	}{
		{"assigned", assigned, "dv_a", "cu_1", nil},
		{"unassigned", unassigned, "dv_b", "", ErrForbidden},
		{"revoked", revoked, "", "", ErrUnauthenticated},
		{"revoked before issued", early, "", "", ErrUnauthenticated},
		{"unknown", unknown, "", "", ErrUnauthenticated},
		{"wrong secret", wrongSecret, "", "", ErrUnauthenticated},
		{"empty", "", "", "", ErrUnauthenticated},
		{"no dot", "dc_abc", "", "", ErrUnauthenticated},
		{"bad id", "dc_notaksuid." + strings.Repeat("A", 43), "", "", ErrUnauthenticated},
		{"short secret", issuedA.CredentialID + ".abc", "", "", ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev, cust, err := s.Authenticate(tt.token)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if dev != tt.device || cust != tt.customer {
				t.Fatalf("got %q/%q, want %q/%q", dev, cust, tt.device, tt.customer)
			}
			if err != nil && tt.token != "" && strings.Contains(err.Error(), tt.token[strings.Index(tt.token, ".")+1:]) {
				t.Fatalf("error %q leaks the secret", err)
			}
		})
	}
	if d, ok := s.Device("dv_a"); !ok || d.Serial != "S1" || d.CustomerID != "cu_1" {
		t.Fatalf("device dv_a = %+v", d)
	}
	if _, ok := s.Customer("cu_1"); !ok {
		t.Fatal("customer cu_1 unknown")
	}
}

// TestPendingReboot: a reboot request is pending until its delivery is
// recorded; the latest request of a device is the one pending; a delivery
// read before its request (replay from a mid-point) keeps it done.
func TestPendingReboot(t *testing.T) {
	s := NewState()
	now := time.Now()
	req := func(dev, id string) *events.DeviceRebootRequested {
		return &events.DeviceRebootRequested{DeviceID: dev, RequestID: id, RequestedBy: "ops", RequestedAt: now}
	}
	del := func(dev, id string) *events.DeviceCommandDelivered {
		return &events.DeviceCommandDelivered{DeviceID: dev, RequestID: id, Command: "reboot", DeliveredAt: now}
	}
	a, b, c := ksuid.New().String(), ksuid.New().String(), ksuid.New().String()
	if _, ok := s.PendingReboot("dv_1"); ok {
		t.Fatal("pending reboot on an empty registry")
	}
	apply(t, s, req("dv_1", a))
	if id, ok := s.PendingReboot("dv_1"); !ok || id != a {
		t.Fatalf("after request: %q %v", id, ok)
	}
	apply(t, s, req("dv_1", b))
	if id, _ := s.PendingReboot("dv_1"); id != b {
		t.Fatalf("second request: pending %q, want %q", id, b)
	}
	apply(t, s, del("dv_1", b), del("dv_1", b))
	if id, ok := s.PendingReboot("dv_1"); ok {
		t.Fatalf("delivered request still pending: %s", id)
	}
	apply(t, s, del("dv_2", c), req("dv_2", c))
	if id, ok := s.PendingReboot("dv_2"); ok {
		t.Fatalf("request read after its delivery is pending: %s", id)
	}
}

// Assigning a device to another customer revokes every credential issued
// before; a first assignment, or one to the same customer, revokes none,
// and a credential issued after the reassignment works.
func TestReassignmentRevokesEarlierCredentials(t *testing.T) {
	now := time.Now()
	s := NewState()
	beforeAssign, issuedA := NewCredential("dv_a", now)
	beforeMove, issuedB := NewCredential("dv_a", now)
	afterMove, issuedC := NewCredential("dv_a", now)
	other, issuedO := NewCredential("dv_o", now)
	apply(t, s,
		&events.DeviceRegistered{DeviceID: "dv_a", Serial: "S1", MAC: "00:11:22:33:44:55", Model: "M1", ManufacturedOn: "2026-04-01", RegisteredAt: now},
		&issuedA,
		&events.DeviceAssigned{DeviceID: "dv_a", CustomerID: "cu_1", AssignedAt: now},
		&issuedB,
		&events.DeviceAssigned{DeviceID: "dv_a", CustomerID: "cu_1", AssignedAt: now},
		&events.DeviceRegistered{DeviceID: "dv_o", Serial: "S2", MAC: "00:11:22:33:44:56", Model: "M1", ManufacturedOn: "2026-04-01", RegisteredAt: now},
		&events.DeviceAssigned{DeviceID: "dv_o", CustomerID: "cu_1", AssignedAt: now},
		&issuedO,
	)
	for _, tok := range []string{beforeAssign, beforeMove} {
		if _, cust, err := s.Authenticate(tok); err != nil || cust != "cu_1" {
			t.Fatalf("before the move: %q, %v; want cu_1", cust, err)
		}
	}
	apply(t, s, &events.DeviceAssigned{DeviceID: "dv_a", CustomerID: "cu_2", AssignedAt: now}, &issuedC)
	for name, tok := range map[string]string{"issued before the first assignment": beforeAssign, "issued before the move": beforeMove} {
		if _, _, err := s.Authenticate(tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("credential %s: err = %v, want ErrUnauthenticated", name, err)
		}
		if revoked, known := s.CredentialRevoked(CredentialID(tok)); !revoked || !known {
			t.Errorf("credential %s: revoked %v known %v", name, revoked, known)
		}
	}
	if _, cust, err := s.Authenticate(afterMove); err != nil || cust != "cu_2" {
		t.Fatalf("credential issued after the move: %q, %v; want cu_2", cust, err)
	}
	if _, cust, err := s.Authenticate(other); err != nil || cust != "cu_1" {
		t.Fatalf("another device of the former customer: %q, %v; want cu_1", cust, err)
	}
}
