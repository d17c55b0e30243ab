package defs

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRollback refuses a bundle older than the one in use.
var ErrRollback = errors.New("definitions bundle: older than the definitions in use")

// ErrSame means the bundle is the version already in use: nothing to do.
var ErrSame = errors.New("definitions bundle: already in use")

// ErrExpired refuses a bundle past its expires_at, or without one (a
// mimamori-defs/1 bundle): a mirror that froze cannot feed appliances the
// same old definitions for ever.
var ErrExpired = errors.New("definitions bundle: expired")

// StoreConfig configures a Store.
type StoreConfig struct {
	// Keys are trusted to sign the first bundle (--defs-pub). Once a
	// bundle is in use, the keys it names (its trust lines) are trusted
	// instead: a signed bundle introduces a key or retires one.
	Keys []ed25519.PublicKey
	// Path is where the bundle in use is kept across restarts; "" for none.
	Path string
	// Now is the clock of the expiry check (default time.Now).
	Now func() time.Time
}

// Store holds the definitions in use. Inspection reads Current on every
// packet without locking; Install swaps in a verified, newer Set, so
// inspection never stops for an update.
type Store struct {
	keys []ed25519.PublicKey
	path string
	now  func() time.Time
	cur  atomic.Pointer[Set]
	mu   sync.Mutex // serialises Install
}

// NewStore returns a Store. When cfg.Path names a bundle saved by an
// earlier run, it is checked and loaded; a missing file leaves the Store
// empty, a bad one is an error.
func NewStore(cfg StoreConfig) (*Store, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("definitions store: a trusted ed25519 public key is required")
	}
	for _, k := range cfg.Keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("definitions store: a trusted key is not an ed25519 public key")
		}
	}
	s := &Store{keys: cfg.Keys, path: cfg.Path, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if s.path == "" {
		return s, nil
	}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("definitions store: %w", err)
	}
	set, err := s.openSaved(b)
	if err != nil {
		return nil, fmt.Errorf("definitions store: saved bundle %s: %w", s.path, err)
	}
	s.cur.Store(set)
	return s, nil
}

// openSaved compiles the bundle an earlier run installed and kept. It
// stays in use even past its expiry: the appliance keeps protecting with
// what it has, and Set.Expired reports it. A mimamori-defs/2 bundle is
// checked against the keys it names itself (readHead), which are the keys
// the Store trusts while it is in use; a mimamori-defs/1 one, which names
// none, against cfg.Keys.
func (s *Store) openSaved(b []byte) (*Set, error) {
	rd, err := split(b)
	if err != nil {
		return nil, err
	}
	if rd.legacy {
		if err := rd.verify(s.keys); err != nil {
			return nil, err
		}
	}
	if err := rd.readHead(); err != nil {
		return nil, err
	}
	return rd.compile()
}

// trusted is the keys a new bundle must be signed by: those the bundle in
// use names, or cfg.Keys before there is one (or while it is a
// mimamori-defs/1 bundle, which names none).
func (s *Store) trusted() []ed25519.PublicKey {
	if c := s.cur.Load(); c != nil && len(c.trust) > 0 {
		return c.trust
	}
	return s.keys
}

// Current is the Set in use, or nil before the first install.
func (s *Store) Current() *Set { return s.cur.Load() }

// Version is the version in use, 0 before the first install.
func (s *Store) Version() uint64 {
	if c := s.cur.Load(); c != nil {
		return c.Version
	}
	return 0
}

// Install refuses b when no trusted key signed it (ErrSignature), it is
// malformed (ErrFormat), older than the Set in use (ErrRollback), the same
// version (ErrSame), or past or without an expiry (ErrExpired); otherwise
// it saves b (fsynced) and swaps the new Set in, and from then on the keys
// b names are the trusted ones. On any error the Set in use stays. The
// checks read the head once, before the lists are compiled, so a rollback
// is refused without compiling a million indicators.
func (s *Store) Install(b []byte) (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rd, err := split(b)
	if err != nil {
		return Info{}, err
	}
	if err := rd.verify(s.trusted()); err != nil {
		return rd.info, err
	}
	if err := rd.readHead(); err != nil {
		return rd.info, err
	}
	if cur, v := s.cur.Load(), rd.info.Version; cur != nil {
		if v < cur.Version {
			return rd.info, fmt.Errorf("%w: offered %d, in use %d", ErrRollback, v, cur.Version)
		}
		if v == cur.Version {
			return rd.info, ErrSame
		}
	}
	if err := rd.info.CheckExpiry(s.now()); err != nil {
		return rd.info, err
	}
	set, err := rd.compile()
	if err != nil {
		return rd.info, err
	}
	if s.path != "" {
		if err := writeFileSync(s.path, b); err != nil {
			return rd.info, fmt.Errorf("definitions store: save: %w", err)
		}
	}
	s.cur.Store(set)
	return rd.info, nil
}

// CheckExpiry refuses (ErrExpired) a bundle past its expires_at at now,
// or without one (mimamori-defs/1), as Store.Install does.
func (i Info) CheckExpiry(now time.Time) error {
	if i.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: version %d is a %s bundle, which has no expires_at; build it again with this release's `mimamori defs build`",
			ErrExpired, i.Version, legacyMagic)
	}
	if !now.Before(i.ExpiresAt) {
		return fmt.Errorf("%w: version %d expired at %s", ErrExpired, i.Version, i.ExpiresAt.In(jst).Format(time.RFC3339))
	}
	return nil
}

// writeFileSync replaces path with b atomically and durably.
func writeFileSync(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// WriteFileSync is writeFileSync for other appliance packages.
func WriteFileSync(path string, b []byte) error { return writeFileSync(path, b) }
