package portal

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"time"

	"github.com/mimamori/mimamori/portal-api/accounts"
)

// SessionConfig sets the session lifetimes.
type SessionConfig struct {
	Idle     time.Duration // ended after this long without a request: 30 min
	Absolute time.Duration // ended this long after login whatever happens: 12 h
	Now      func() time.Time
}

type session struct {
	p          accounts.Principal
	created    time.Time
	lastSeen   time.Time
	totpSecret string // pending enrolment, never sent back after the first answer
	// An active session changes 2-step verification from the settings
	// only after its user entered the password again: until reauthUntil it
	// may start an enrolment (or turn the factor off, or get new recovery
	// codes), and enrolling marks the one it started.
	reauthUntil time.Time
	enrolling   bool
	replacing   bool // the enrolment started replaces the account's factor
	smsSent     int  // SMS codes sent for this session (smsPerSession)
}

// sessions is the server-side store. It keys sessions by the SHA-256 of
// their identifier, so the table holds nothing a cookie can be made from.
// It lives in memory: a restart logs everyone out.
type sessions struct {
	cfg SessionConfig
	mu  sync.Mutex
	m   map[string]*session
}

func newSessions(cfg SessionConfig) *sessions {
	if cfg.Idle <= 0 {
		cfg.Idle = 30 * time.Minute
	}
	if cfg.Absolute <= 0 {
		cfg.Absolute = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &sessions{cfg: cfg, m: map[string]*session{}}
}

func sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// newID is a fresh session identifier: 256 random bits.
func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns its new identifier.
func (s *sessions) create(p accounts.Principal) string {
	id := newID()
	now := s.cfg.Now()
	s.mu.Lock()
	s.m[sessionKey(id)] = &session{p: p, created: now, lastSeen: now}
	s.mu.Unlock()
	return id
}

// rotate replaces a session's identifier, keeping its start time.
func (s *sessions) rotate(oldID string, p accounts.Principal) string {
	s.mu.Lock()
	old := s.m[sessionKey(oldID)]
	delete(s.m, sessionKey(oldID))
	s.mu.Unlock()
	id := s.create(p)
	if old != nil {
		s.mu.Lock()
		s.m[sessionKey(id)].created = old.created
		s.mu.Unlock()
	}
	return id
}

// reissue moves a session to a new identifier with principal p and
// returns it, keeping the rest of it (its start, its enrolment, its count
// of codes) with f applied; the old identifier ends. "" if it has ended.
func (s *sessions) reissue(oldID string, p accounts.Principal, f func(*session)) string {
	id := newID()
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.m[sessionKey(oldID)]
	if se == nil {
		return ""
	}
	delete(s.m, sessionKey(oldID))
	se.p = p
	f(se)
	s.m[sessionKey(id)] = se
	return id
}

// get returns a live session and marks it used; expired ones are ended.
func (s *sessions) get(id string) (*session, bool) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sessionKey(id)
	se := s.m[k]
	if se == nil {
		return nil, false
	}
	if now.Sub(se.lastSeen) > s.cfg.Idle || now.Sub(se.created) > s.cfg.Absolute {
		delete(s.m, k)
		return nil, false
	}
	se.lastSeen = now
	c := *se
	return &c, true
}

func (s *sessions) update(id string, f func(*session)) {
	s.mu.Lock()
	if se := s.m[sessionKey(id)]; se != nil {
		f(se)
	}
	s.mu.Unlock()
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.m, sessionKey(id))
	s.mu.Unlock()
}

// endAccount ends every session of an account but the one keep names ("" for
// none), after its password changed. Sessions are also checked against the
// account's password version at every request (authAPI.need): this only
// frees their memory at once.
func (s *sessions) endAccount(accountID, keep string) {
	k := ""
	if keep != "" {
		k = sessionKey(keep)
	}
	s.mu.Lock()
	for key, se := range s.m {
		if se.p.AccountID == accountID && key != k {
			delete(s.m, key)
		}
	}
	s.mu.Unlock()
}
