package notifier

// alertsRemembered bounds firstReads: the ingest refuses a second version
// of an alert it knows of, so the versions that reach the log come from
// gateways racing or ids older than the ingest's index, read close behind
// the first or not at all; a 100,000 keys (some 10 MB) reach far back.
const alertsRemembered = 100_000

// firstReads remembers which record was the first this member read of each
// recent alert (device and id), so that a later version of an alert is not
// decided again: the first version's decision stands (mailed, deferred or
// not mailed). Reading the same record again (a retried batch, a partition
// read again after a rebalance) is still the first read. A member that
// starts after the first version knows of it only through the ledger,
// which covers a first version that was mailed or deferred.
type firstReads struct {
	at   map[string]recordAt
	ring []string
	next int
}

type recordAt struct {
	partition int32
	offset    int64
}

func newFirstReads() *firstReads {
	return &firstReads{at: map[string]recordAt{}, ring: make([]string, 0, 1024)}
}

// first reports whether the record at partition/offset is the first read
// of the alert key, remembering it if so.
func (f *firstReads) first(key string, partition int32, offset int64) bool {
	r := recordAt{partition, offset}
	if seen, ok := f.at[key]; ok {
		return seen == r
	}
	if len(f.ring) < alertsRemembered {
		f.ring = append(f.ring, key)
	} else {
		delete(f.at, f.ring[f.next])
		f.ring[f.next] = key
		f.next = (f.next + 1) % alertsRemembered
	}
	f.at[key] = r
	return true
}
