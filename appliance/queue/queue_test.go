package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func recs(from, n int) [][]byte {
	var out [][]byte
	for i := from; i < from+n; i++ {
		out = append(out, []byte(fmt.Sprintf(`{"n":%06d}`, i)))
	}
	return out
}

func TestSurvivesRestartAndTornTail(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Append(recs(0, 10)); err != nil {
		t.Fatal(err)
	}
	got, cur, err := q.Peek(4, 1<<20)
	if err != nil || len(got) != 4 {
		t.Fatalf("peek %d %v", len(got), err)
	}
	if err := q.Ack(cur); err != nil {
		t.Fatal(err)
	}
	q.Close()
	// Power lost in the middle of the next write: half a record at the end.
	seg, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	f, _ := os.OpenFile(seg[len(seg)-1], os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{20, 0, 0, 0, 1, 2, 3})
	f.Close()

	q, err = Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if d := q.Depth(); d != 6 {
		t.Fatalf("depth after restart %d, want 6", d)
	}
	if err := q.Append(recs(10, 1)); err != nil {
		t.Fatal(err)
	}
	got, _, _ = q.Peek(100, 1<<20)
	if len(got) != 7 || string(got[0]) != `{"n":000004}` || string(got[6]) != `{"n":000010}` {
		t.Fatalf("got %d records: %q … %q", len(got), got[0], got[len(got)-1])
	}
}

func TestFullQueueDropsOldestWithExactGap(t *testing.T) {
	dir := t.TempDir()
	// Records are 8+12 bytes; segments of 200 bytes hold 10.
	q, err := Open(dir, Config{MaxBytes: 600, SegmentBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	_, cur, _ := func() ([][]byte, Cursor, error) { q.Append(recs(0, 10)); return q.Peek(3, 1<<20) }()
	if err := q.Ack(cur); err != nil { // 3 of the first segment delivered
		t.Fatal(err)
	}
	for i := 10; i < 45; i++ {
		if err := q.Append(recs(i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var dropped uint64
	for _, g := range q.Gaps() {
		dropped += g.Dropped
	}
	depth := q.Depth()
	if dropped+uint64(depth)+3 != 45 {
		t.Fatalf("dropped %d + depth %d + acked 3 != 45", dropped, depth)
	}
	if dropped == 0 || q.Bytes() > 600 {
		t.Fatalf("nothing dropped (bytes %d)", q.Bytes())
	}
	// The gap survives a restart until acknowledged.
	q.Close()
	q, _ = Open(dir, Config{MaxBytes: 600, SegmentBytes: 200})
	defer q.Close()
	gaps := q.Gaps()
	var again uint64
	for _, g := range gaps {
		again += g.Dropped
	}
	if again != dropped || q.Depth() != depth {
		t.Fatalf("after restart: gaps %d depth %d", again, q.Depth())
	}
	for _, g := range gaps {
		if err := q.AckGap(g.ID); err != nil {
			t.Fatal(err)
		}
	}
	if len(q.Gaps()) != 0 {
		t.Fatal("gap not forgotten")
	}
	got, _, _ := q.Peek(1000, 1<<20)
	if int64(len(got)) != depth || string(got[len(got)-1]) != `{"n":000044}` {
		t.Fatalf("peek %d, last %q", len(got), got[len(got)-1])
	}
}

// TestDropsSignalled: Drops is signalled when records are dropped unsent,
// and not for appends that fit or for segments already delivered. One
// Append of many records (the agent's group commit) fills segments to
// SegmentBytes, not to half of it.
func TestDropsSignalled(t *testing.T) {
	// Records are 8+12 bytes; segments of 200 bytes hold 10.
	dir := t.TempDir()
	q, err := Open(dir, Config{MaxBytes: 600, SegmentBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	signalled := func() bool {
		select {
		case <-q.Drops():
			return true
		default:
			return false
		}
	}
	if err := q.Append(recs(0, 30)); err != nil {
		t.Fatal(err)
	}
	if signalled() || len(q.Gaps()) != 0 {
		t.Fatal("drop signalled for a queue within its limit")
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, p := range segs {
		if st, err := os.Stat(p); err != nil || st.Size() != 200 {
			t.Fatalf("segment %s: %v, %v; want 3 segments of 200 bytes", p, st.Size(), err)
		}
	}
	if len(segs) != 3 {
		t.Fatalf("%d segments for 30 records, want 3 of 10", len(segs))
	}
	// Deliver the first segment: dropping it later loses nothing.
	_, cur, _ := q.Peek(10, 1<<20)
	if err := q.Ack(cur); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(recs(30, 10)); err != nil {
		t.Fatal(err)
	}
	if signalled() || len(q.Gaps()) != 0 {
		t.Fatalf("drop signalled with nothing unsent dropped (gaps %v)", q.Gaps())
	}
	if err := q.Append(recs(40, 10)); err != nil {
		t.Fatal(err)
	}
	if !signalled() || len(q.Gaps()) != 1 || q.Gaps()[0].Dropped != 10 {
		t.Fatalf("drop of 10 unsent: gaps %v", q.Gaps())
	}
}

// AckRefused moves past a batch and records its refused records as a gap
// in one fsynced state: after a restart the batch is gone, the gap is
// there once, and the next batch follows.
func TestAckRefusedRecordsAGapAtomically(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Append(recs(0, 10)); err != nil {
		t.Fatal(err)
	}
	_, cur, err := q.Peek(6, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.AckRefused(cur, 2); err != nil {
		t.Fatal(err)
	}
	if err := q.AckRefused(cur, 2); err != nil { // the same cursor again: nothing new
		t.Fatal(err)
	}
	q.Close()
	q, err = Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	gaps := q.Gaps()
	if len(gaps) != 1 || gaps[0].Dropped != 2 || gaps[0].ID == "" {
		t.Fatalf("gaps after restart %+v, want one of 2", gaps)
	}
	got, _, _ := q.Peek(100, 1<<20)
	if q.Depth() != 4 || len(got) != 4 || string(got[0]) != `{"n":000006}` {
		t.Fatalf("depth %d, next %q", q.Depth(), got)
	}
}
