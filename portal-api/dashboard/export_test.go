package dashboard

import "time"

// SetFleetQuick lets tests with a small fleet see stale figures served.
func SetFleetQuick(s *Store, d time.Duration) { s.fleetQuick = d }

// FleetCached reports whether the fleet figures of p are kept.
func FleetCached(s *Store, p Period) bool {
	s.fleetMu.Lock()
	defer s.fleetMu.Unlock()
	_, ok := s.fleet[Day(p.From)+"/"+Day(p.To)]
	return ok
}
