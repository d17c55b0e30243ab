package dashboard

import "time"

// SetFleetQuick lets tests with a small fleet see stale figures served.
func SetFleetQuick(s *Store, d time.Duration) { s.fleetQuick = d }
