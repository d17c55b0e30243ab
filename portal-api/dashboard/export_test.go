package dashboard

import "time"

// SetFleetQuick lets tests with a small fleet see stale figures served.
func SetFleetQuick(s *Store, d time.Duration) {
	s.fleet.mu.Lock()
	s.fleet.quick = d
	s.fleet.mu.Unlock()
}

// FleetCached reports whether the fleet figures of p are kept.
func FleetCached(s *Store, p Period) bool {
	s.fleet.mu.Lock()
	defer s.fleet.mu.Unlock()
	_, ok := s.fleet.entries[Day(p.From)+"/"+Day(p.To)]
	return ok
}
