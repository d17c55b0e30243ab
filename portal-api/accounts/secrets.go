package accounts

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password length limits (R-31 and the issue): no composition rules.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// argon2id parameters: the OWASP minimum (19 MiB, 2 passes, 1 lane).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// argonSlots bounds the argon2id computations running at once. Each one
// takes argonMemory (19 MiB) and a core for some milliseconds; unbounded, a
// flood of logins (every one runs it: a correct password of an account
// must never be refused for its address alone) would exhaust the memory
// and stop the portal for everyone. Past the bound, requests queue: a
// flood slows logins, it cannot take the process down.
var argonSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// argonKey is argon2.IDKey, a variable so a test can watch the bound.
var argonKey = argon2.IDKey

// idKey computes an argon2id key within argonSlots.
func idKey(pw, salt []byte, t, m uint32, p uint8, n uint32) []byte {
	argonSlots <- struct{}{}
	defer func() { <-argonSlots }()
	return argonKey(pw, salt, t, m, p, n)
}

//go:embed breached.txt
var breachedList []byte

func loadBreached() map[string]bool {
	m := make(map[string]bool, 4000)
	sc := bufio.NewScanner(bytes.NewReader(breachedList))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m[strings.ToLower(l)] = true
	}
	return m
}

// secrets handles what is secret in the accounts: the password policy
// (the breached list) and a dummy hash that an unknown user's login is
// checked against, the sealing of TOTP secrets and phone numbers, and the
// pending SMS codes, of which only hashes are kept.
type secrets struct {
	codeTTL  time.Duration
	seal     *sealer
	breached map[string]bool
	dummy    string // the hash of no account's password

	mu      sync.Mutex
	smsCode map[string]smsChallenge // account ID and login attempt (codeKey) → pending code
}

type smsChallenge struct {
	purpose  string // smsEnrol, smsLogin or smsReauth
	phone    string
	codeHash string
	expires  time.Time
	tries    int
}

func newSecrets(key []byte, codeTTL time.Duration) (*secrets, error) {
	sl, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	return &secrets{codeTTL: codeTTL, seal: sl, breached: loadBreached(), dummy: hashPassword(randomText(24)),
		smsCode: map[string]smsChallenge{}}, nil
}

// verifyNoAccount costs what checking a password of an account costs,
// and always fails: an unknown user is not told by the time of the answer.
func (s *secrets) verifyNoAccount(pw string) { verifyPassword(s.dummy, pw) }

// newSMSCode draws a code for one purpose of one login attempt of an
// account, to be sent to phone, and forgets the codes that expired.
func (s *secrets) newSMSCode(accountID, attempt, purpose, phone string, now time.Time) (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	code := fmt.Sprintf("%06d", n.Int64())
	s.mu.Lock()
	for k, c := range s.smsCode { // the caps bound the sends, this what they leave behind
		if now.After(c.expires) {
			delete(s.smsCode, k)
		}
	}
	s.smsCode[codeKey(accountID, attempt)] = smsChallenge{purpose: purpose, phone: phone, codeHash: sha256Hex(accountID + "|" + code),
		expires: now.Add(s.codeTTL)}
	s.mu.Unlock()
	return code, nil
}

// codeKey names the pending SMS code of one login attempt of an account.
func codeKey(accountID, attempt string) string { return accountID + "|" + attempt }

// takeSMSCode checks an SMS code sent for purpose to this login attempt
// and returns the phone number it went to; a right code is spent, and so
// is the challenge after five wrong ones.
func (s *secrets) takeSMSCode(accountID, attempt, purpose, code string, now time.Time) (string, bool) {
	k := codeKey(accountID, attempt)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.smsCode[k]
	if !ok || c.purpose != purpose {
		return "", false
	}
	if now.After(c.expires) {
		delete(s.smsCode, k)
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(sha256Hex(accountID+"|"+strings.TrimSpace(code))), []byte(c.codeHash)) != 1 {
		c.tries++
		if c.tries >= 5 {
			delete(s.smsCode, k)
		} else {
			s.smsCode[k] = c
		}
		return "", false
	}
	delete(s.smsCode, k)
	return c.phone, true
}

// checkPassword applies the policy: length in characters, and not on the
// bundled list of common breached passwords (compared case-insensitively).
func (s *secrets) checkPassword(pw, loginID string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordLen:
		return ErrPasswordTooShort
	case n > MaxPasswordLen:
		return ErrPasswordTooLong
	case s.breached[strings.ToLower(pw)], strings.EqualFold(pw, loginID):
		return ErrPasswordBreached
	}
	return nil
}

// hashPassword returns an argon2id hash in the PHC string format.
func hashPassword(pw string) string { return hashWithSalt(pw, randomBytes(16)) }

// hashWithSalt is hashPassword with a given salt.
func hashWithSalt(pw string, salt []byte) string {
	k := idKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(k))
}

// phc is a parsed argon2id hash in the PHC string format.
type phc struct {
	params    string // everything before the key: the same for hashes of one salt
	m, t      uint32
	p         uint8
	salt, key []byte
}

func parsePHC(hash string) (phc, bool) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return phc{}, false
	}
	h := phc{params: strings.Join(parts[:5], "$")}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.m, &h.t, &h.p); err != nil {
		return phc{}, false
	}
	enc := base64.RawStdEncoding
	var err1, err2 error
	h.salt, err1 = enc.DecodeString(parts[4])
	h.key, err2 = enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(h.key) == 0 {
		return phc{}, false
	}
	return h, true
}

// derive is the argon2id key of pw under h's parameters and salt.
func (h phc) derive(pw string) []byte {
	return idKey([]byte(pw), h.salt, h.t, h.m, h.p, uint32(len(h.key)))
}

// verifyPassword checks pw against a PHC argon2id hash in constant time.
func verifyPassword(hash, pw string) bool {
	h, ok := parsePHC(hash)
	return ok && subtle.ConstantTimeCompare(h.derive(pw), h.key) == 1
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

var lowerB32 = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// randomText is n characters from an alphabet without look-alikes (no l,
// o, 0, 1), easy to type from a mail.
func randomText(n int) string { return lowerB32.EncodeToString(randomBytes(n))[:n] }

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// sealer encrypts secrets that must be recoverable (TOTP secrets, phone
// numbers) with AES-256-GCM under a key kept outside the log. The
// customer and account IDs are bound as associated data, so a sealed value
// cannot be moved to another account.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("accounts: sealing key must be 32 bytes, got %d", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: g}, nil
}

func (s *sealer) seal(plain, customerID, accountID string) string {
	nonce := randomBytes(s.aead.NonceSize())
	ct := s.aead.Seal(nonce, nonce, []byte(plain), []byte(customerID+"|"+accountID))
	return base64.RawURLEncoding.EncodeToString(ct)
}

func (s *sealer) open(sealed, customerID, accountID string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("sealed value is malformed")
	}
	n := s.aead.NonceSize()
	pt, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(customerID+"|"+accountID))
	if err != nil {
		return "", errors.New("sealed value does not open with this key")
	}
	return string(pt), nil
}

// LoadOrCreateKey returns the 32-byte sealing key kept (hex) in path,
// creating a random one (mode 0600) the first time. Losing it makes the
// enrolled TOTP secrets and phone numbers unreadable: customers then
// re-enrol after a password reset.
func LoadOrCreateKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		k, derr := hex.DecodeString(strings.TrimSpace(string(raw)))
		if derr != nil || len(k) != 32 {
			return nil, fmt.Errorf("accounts key %s: not a 32-byte hex key", path)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("accounts key: %w", err)
	}
	k := randomBytes(32)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("accounts key: %w", err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("accounts key: %w", err)
	}
	return k, nil
}

// KeyFile is where the embedded default keeps the sealing key.
func KeyFile(dataDir string) string { return filepath.Join(dataDir, "accounts", "seal.key") }
