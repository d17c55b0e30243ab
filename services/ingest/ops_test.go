package ingest_test

import (
	"net/http"
	"testing"

	"github.com/mimamori/mimamori/services/ingest"
)

// The gateway's listener faces the internet: by default it answers
// /healthz only, and /readyz and /metrics (which name the dependencies and
// count the fleet's traffic) are on the admin listener.
func TestReadinessAndMetricsOnlyWhenPublic(t *testing.T) {
	for _, public := range []bool{false, true} {
		g := newGateway(t, ingest.Config{PublicMetrics: public})
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 404, "/metrics": 404} {
			if public {
				want = 200
			}
			if got := g.do(t, request{method: http.MethodGet, path: path}); got.status != want {
				t.Errorf("public %v: GET %s = %d %s, want %d", public, path, got.status, got.raw, want)
			}
		}
	}
}
