package defs

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// ErrRollback refuses a bundle older than the one in use.
var ErrRollback = errors.New("definitions bundle: older than the definitions in use")

// ErrSame means the bundle is the version already in use: nothing to do.
var ErrSame = errors.New("definitions bundle: already in use")

// Store holds the definitions in use. Inspection reads Current on every
// packet without locking; Install swaps in a verified, newer Set, so
// inspection never stops for an update.
type Store struct {
	pub  ed25519.PublicKey
	path string // where the bundle in use is kept across restarts; "" for none
	cur  atomic.Pointer[Set]
	mu   sync.Mutex // serialises Install
}

// NewStore returns a Store trusting pub. When path names a bundle saved by
// an earlier run, it is verified and loaded; a missing file leaves the
// Store empty, a bad one is an error.
func NewStore(pub ed25519.PublicKey, path string) (*Store, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("definitions store: a trusted ed25519 public key is required")
	}
	s := &Store{pub: pub, path: path}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("definitions store: %w", err)
	}
	set, _, err := Open(b, pub)
	if err != nil {
		return nil, fmt.Errorf("definitions store: saved bundle %s: %w", path, err)
	}
	s.cur.Store(set)
	return s, nil
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

// Install verifies b, refuses it when its signature is bad (ErrSignature),
// it is malformed (ErrFormat), older than the Set in use (ErrRollback) or
// the same version (ErrSame); otherwise it saves b (fsynced) and swaps the
// new Set in. On any error the Set in use stays.
func (s *Store) Install(b []byte) (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := Verify(b, s.pub); err != nil {
		return Info{}, err
	}
	_, info, err := splitVersion(b)
	if err != nil {
		return Info{}, err
	}
	if cur := s.cur.Load(); cur != nil {
		if info.Version < cur.Version {
			return info, fmt.Errorf("%w: offered %d, in use %d", ErrRollback, info.Version, cur.Version)
		}
		if info.Version == cur.Version {
			return info, ErrSame
		}
	}
	set, info, err := ParseUnverified(b)
	if err != nil {
		return info, err
	}
	if s.path != "" {
		if err := writeFileSync(s.path, b); err != nil {
			return info, fmt.Errorf("definitions store: save: %w", err)
		}
	}
	s.cur.Store(set)
	return info, nil
}

// splitVersion reads only the version from a verified bundle, so a
// rollback is refused without compiling a million indicators.
func splitVersion(b []byte) (*Set, Info, error) {
	v, err := PeekVersion(b)
	return nil, Info{Version: v}, err
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
