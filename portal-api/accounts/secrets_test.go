package accounts

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// However many password checks arrive at once, at most cap(argonSlots)
// argon2id computations (19 MiB each) run; the others wait their turn and
// then complete.
func TestPasswordHashingIsBounded(t *testing.T) {
	const hash = "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	var inside atomic.Int32
	release := make(chan struct{})
	real := argonKey
	argonKey = func(pw, salt []byte, tm, m uint32, p uint8, n uint32) []byte {
		inside.Add(1)
		<-release
		inside.Add(-1)
		return real(pw, salt, tm, m, p, n)
	}
	defer func() { argonKey = real }()

	slots, callers := cap(argonSlots), 3*cap(argonSlots)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() { verifyPassword(hash, "a guess") })
	}
	// Wait until every caller is either computing or queued for a slot.
	for deadline := time.Now().Add(10 * time.Second); ; {
		n := int(inside.Load())
		if n > slots {
			close(release)
			t.Fatalf("%d argon2id computations ran at once for %d callers, want at most %d", n, callers, slots)
		}
		if n == slots && queued() == callers-slots {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("after 10 s: %d computing, %d queued, want %d and %d", n, queued(), slots, callers-slots)
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := inside.Load(); n != 0 {
		t.Fatalf("%d computations still running", n)
	}
}

// queued is how many goroutines wait for an argon2id slot.
func queued() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[chan send") && strings.Contains(g, "accounts.idKey(") {
			n++
		}
	}
	return n
}

func newTestSecrets(t *testing.T) *secrets {
	t.Helper()
	s, err := newSecrets(bytes.Repeat([]byte{7}, 32), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The policy counts characters, not bytes, and refuses the breached
// passwords and the user ID, in any letter case.
func TestSecretsPasswordPolicy(t *testing.T) {
	s := newTestSecrets(t)
	tests := []struct {
		pw   string
		want error
	}{
		{"short pass", ErrPasswordTooShort},
		{"ぱすわーどぱすわーどぱす", nil}, // 12 characters, 36 bytes
		{strings.Repeat("x", MaxPasswordLen+1), ErrPasswordTooLong},
		{"PassWord12345", ErrPasswordBreached},
		{"Alice.Example", ErrPasswordBreached},
		{"a long enough passphrase", nil},
	}
	for _, tt := range tests {
		if got := s.checkPassword(tt.pw, "alice.example"); !errors.Is(got, tt.want) {
			t.Errorf("checkPassword(%q) = %v, want %v", tt.pw, got, tt.want)
		}
	}
}

// A sealed value opens for its own account only, and under its key only.
func TestSecretsSealBindsTheAccount(t *testing.T) {
	s := newTestSecrets(t)
	sealed := s.seal.seal("+819012345678", "cu_1", "ac_1")
	if got, err := s.seal.open(sealed, "cu_1", "ac_1"); err != nil || got != "+819012345678" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := s.seal.open(sealed, "cu_1", "ac_2"); err == nil {
		t.Fatal("a sealed value opens for another account")
	}
	other, err := newSealer(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.open(sealed, "cu_1", "ac_1"); err == nil {
		t.Fatal("a sealed value opens under another key")
	}
}

// An SMS code completes its purpose of its login attempt once, before it
// expires and before five wrong codes; only its hash is kept.
func TestSecretsSMSCodes(t *testing.T) {
	s := newTestSecrets(t)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	const phone = "+819012345678"
	code, err := s.newSMSCode("ac_1", "att1", smsLogin, phone, now)
	if err != nil {
		t.Fatal(err)
	}
	if !isOneTimeCode(code) {
		t.Fatalf("code %q is not six digits", code)
	}
	for _, c := range s.smsCode {
		if strings.Contains(c.codeHash, code) {
			t.Fatal("the code is kept in the clear")
		}
	}
	if _, ok := s.takeSMSCode("ac_1", "att1", smsEnrol, code, now); ok {
		t.Fatal("a login code passes an enrolment")
	}
	if _, ok := s.takeSMSCode("ac_1", "att2", smsLogin, code, now); ok {
		t.Fatal("a code passes another login attempt")
	}
	if got, ok := s.takeSMSCode("ac_1", "att1", smsLogin, " "+code+" ", now); !ok || got != phone {
		t.Fatalf("the right code: %q, %v", got, ok)
	}
	if _, ok := s.takeSMSCode("ac_1", "att1", smsLogin, code, now); ok {
		t.Fatal("a code passes twice")
	}

	code, _ = s.newSMSCode("ac_1", "att1", smsLogin, phone, now)
	n, _ := strconv.Atoi(code)
	wrong := fmt.Sprintf("%06d", (n+1)%1_000_000)
	for range 5 {
		if _, ok := s.takeSMSCode("ac_1", "att1", smsLogin, wrong, now); ok {
			t.Fatal("a wrong code passes")
		}
	}
	if _, ok := s.takeSMSCode("ac_1", "att1", smsLogin, code, now); ok {
		t.Fatal("the right code passes after five wrong ones")
	}

	code, _ = s.newSMSCode("ac_1", "att1", smsLogin, phone, now)
	if _, ok := s.takeSMSCode("ac_1", "att1", smsLogin, code, now.Add(5*time.Minute+time.Second)); ok {
		t.Fatal("an expired code passes")
	}
	if len(s.smsCode) != 0 {
		t.Fatalf("%d codes kept after they expired", len(s.smsCode))
	}
}

// A login of no account costs one argon2id derivation, as a password
// check of an account does.
func TestSecretsNoAccountCostsADerivation(t *testing.T) {
	s := newTestSecrets(t)
	var n atomic.Int32
	real := argonKey
	argonKey = func(pw, salt []byte, tm, m uint32, p uint8, k uint32) []byte {
		n.Add(1)
		return real(pw, salt, tm, m, p, k)
	}
	defer func() { argonKey = real }()
	s.verifyNoAccount("a guess at a password")
	if got := n.Load(); got != 1 {
		t.Fatalf("%d derivations, want 1", got)
	}
}
