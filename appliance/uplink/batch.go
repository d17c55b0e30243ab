package uplink

import (
	"fmt"

	"github.com/mimamori/mimamori/events"
)

// batchOverhead is the length of `{"alerts":[` and `]}`.
const batchOverhead = len(`{"alerts":[]}`)

// Batches splits alerts, in order, into consecutive sub-slices (sharing
// alerts' backing array) of at most maxCount alerts whose request body is
// at most maxBytes bytes before compression. Zero or negative limits mean
// the protocol's MaxBatchAlerts and MaxBatchBytes. An alert too large for
// any batch gets one of its own, which the gateway will refuse with 413.
func Batches(alerts []events.Alert, maxCount, maxBytes int) ([][]events.Alert, error) {
	sizes := make([]int, len(alerts))
	for i := range alerts {
		b, err := marshal(&alerts[i])
		if err != nil {
			return nil, fmt.Errorf("uplink: encode alert %d: %w", i, err)
		}
		sizes[i] = len(b)
	}
	var out [][]events.Alert
	for _, r := range split(sizes, maxCount, maxBytes) {
		out = append(out, alerts[r.from:r.to:r.to])
	}
	return out, nil
}

// span is alerts[from:to], whose encodings sum to bytes.
type span struct{ from, to, bytes int }

// split groups encoded sizes into spans that respect both limits.
func split(sizes []int, maxCount, maxBytes int) []span {
	if maxCount <= 0 {
		maxCount = MaxBatchAlerts
	}
	if maxBytes <= 0 {
		maxBytes = MaxBatchBytes
	}
	var out []span
	cur := span{}
	for i, n := range sizes {
		count := i - cur.from
		// Body size if alert i joins: overhead, encodings, commas.
		body := batchOverhead + cur.bytes + n + count
		if count > 0 && (count >= maxCount || body > maxBytes) {
			cur.to = i
			out = append(out, cur)
			cur = span{from: i}
		}
		cur.bytes += n
	}
	if len(sizes) > cur.from {
		cur.to = len(sizes)
		out = append(out, cur)
	}
	return out
}
