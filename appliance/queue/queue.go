// Package queue is the appliance's store-and-forward queue: alerts wait on
// disk until the cloud acknowledged them, across agent restarts and power
// loss of the box, within a fixed size limit.
//
// Records are appended to segment files ([length][CRC-32C][bytes] each)
// and fsynced before Append returns; the read position and the pending
// gap records live in a state file replaced atomically (write, fsync,
// rename, fsync the folder). On open, a torn record at the end of the last
// segment (power lost mid-write) is cut off. When the segments exceed
// MaxBytes the oldest segment is dropped whole; the exact number of
// unsent records it held becomes a Gap, which the uplink reports to the
// cloud like an alert, so the loss is visible rather than silent.
package queue

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/ksuid"
)

// Defaults for the zero values of Config. 256 MiB holds about 300,000
// alerts (some 800 bytes each as JSON): days of a busy office's alerts.
const (
	DefaultMaxBytes     = 256 << 20
	DefaultSegmentBytes = 4 << 20
)

// maxRecord bounds one record; a longer one is refused by Append and ends
// the readable part of a segment on open.
const maxRecord = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Config configures a Queue.
type Config struct {
	// MaxBytes bounds the segment files on disk; SegmentBytes is the size
	// at which a new segment starts (also the unit of dropping).
	MaxBytes     int64
	SegmentBytes int64
	// Now is the clock of gap records (default time.Now).
	Now func() time.Time
}

// Gap is a count of records dropped unsent: the queue was full, or the
// gateway refused them for good (AckRefused).
type Gap struct {
	ID        string    `json:"id"` // a KSUID, so a resent gap is counted once
	Dropped   uint64    `json:"dropped"`
	DroppedAt time.Time `json:"dropped_at"`
}

type segInfo struct {
	id      uint64
	size    int64
	records int
}

type state struct {
	Seg  uint64 `json:"seg"`  // segment being read
	Off  int64  `json:"off"`  // byte offset in it
	Idx  int    `json:"idx"`  // record index in it
	Gaps []Gap  `json:"gaps"` // unreported drops, oldest first
}

// Queue is safe for concurrent use: one appender and one reader.
type Queue struct {
	dir string
	cfg Config

	mu    sync.Mutex
	segs  []segInfo // oldest first; the last is written
	w     *os.File
	st    state
	total int64
	drops chan struct{}
}

// Cursor is a read position returned by Peek and passed to Ack.
type Cursor struct {
	seg uint64
	off int64
	idx int
}

// Open opens or creates the queue in dir.
func Open(dir string, cfg Config) (*Queue, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = DefaultSegmentBytes
	}
	if cfg.SegmentBytes > cfg.MaxBytes/2 {
		cfg.SegmentBytes = max(cfg.MaxBytes/2, 1)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q := &Queue{dir: dir, cfg: cfg, drops: make(chan struct{}, 1)}
	if b, err := os.ReadFile(q.statePath()); err == nil {
		if err := json.Unmarshal(b, &q.st); err != nil {
			return nil, fmt.Errorf("queue: state file: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("queue: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	var ids []uint64
	for _, n := range names {
		id, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), ".seg"), 10, 64)
		if err == nil {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for i, id := range ids {
		if id < q.st.Seg {
			// Fully read before a crash that came before its removal.
			_ = os.Remove(q.segPath(id))
			continue
		}
		size, n, err := scanSegment(q.segPath(id), i == len(ids)-1)
		if err != nil {
			return nil, err
		}
		q.segs = append(q.segs, segInfo{id: id, size: size, records: n})
		q.total += size
	}
	if len(q.segs) == 0 || q.segs[0].id > q.st.Seg {
		// The segment being read is gone (dropped): read from the oldest.
		start := q.st.Seg
		if len(q.segs) > 0 {
			start = q.segs[0].id
		} else if start == 0 {
			start = 1
		}
		q.st.Seg, q.st.Off, q.st.Idx = start, 0, 0
	}
	if len(q.segs) == 0 {
		q.segs = []segInfo{{id: q.st.Seg}}
	}
	last := q.segs[len(q.segs)-1]
	q.w, err = os.OpenFile(q.segPath(last.id), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if _, err := q.w.Seek(last.size, io.SeekStart); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return q, nil
}

// scanSegment counts a segment's whole records; in the last segment a torn
// or corrupt tail is cut off.
func scanSegment(path string, last bool) (int64, int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("queue: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var off int64
	n := 0
	hdr := make([]byte, 8)
	buf := make([]byte, 0, 4096)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			break
		}
		l := binary.LittleEndian.Uint32(hdr)
		if l > maxRecord {
			break
		}
		if cap(buf) < int(l) {
			buf = make([]byte, l)
		}
		buf = buf[:l]
		if _, err := io.ReadFull(r, buf); err != nil {
			break
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			break
		}
		off += 8 + int64(l)
		n++
	}
	if st, err := f.Stat(); err == nil && st.Size() != off && last {
		if err := f.Truncate(off); err != nil {
			return 0, 0, fmt.Errorf("queue: cut torn tail of %s: %w", path, err)
		}
		_ = f.Sync()
	}
	return off, n, nil
}

func (q *Queue) segPath(id uint64) string {
	return filepath.Join(q.dir, fmt.Sprintf("%016d.seg", id))
}

func (q *Queue) statePath() string { return filepath.Join(q.dir, "state.json") }

// Close closes the segment being written.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.w == nil {
		return nil
	}
	err := q.w.Close()
	q.w = nil
	return err
}

// Append writes records and fsyncs them before returning. When the queue
// then exceeds MaxBytes, the oldest segments are dropped and their unread
// records recorded as a Gap.
func (q *Queue) Append(records [][]byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.w == nil {
		return errors.New("queue: closed")
	}
	var buf []byte
	for _, r := range records {
		if len(r) > maxRecord {
			return fmt.Errorf("queue: record of %d bytes, at most %d allowed", len(r), maxRecord)
		}
		cur := &q.segs[len(q.segs)-1]
		if cur.size > 0 && cur.size+8+int64(len(r)) > q.cfg.SegmentBytes { // cur.size counts buf already
			if err := q.writeSync(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := q.rotate(); err != nil {
				return err
			}
			cur = &q.segs[len(q.segs)-1]
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(r, castagnoli))
		buf = append(buf, r...)
		cur.records++
		cur.size += 8 + int64(len(r))
		q.total += 8 + int64(len(r))
	}
	if err := q.writeSync(buf); err != nil {
		return err
	}
	return q.enforceLimit()
}

func (q *Queue) writeSync(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := q.w.Write(b); err != nil {
		return fmt.Errorf("queue: write: %w", err)
	}
	if err := q.w.Sync(); err != nil {
		return fmt.Errorf("queue: fsync: %w", err)
	}
	return nil
}

func (q *Queue) rotate() error {
	next := q.segs[len(q.segs)-1].id + 1
	f, err := os.OpenFile(q.segPath(next), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("queue: new segment: %w", err)
	}
	if err := q.w.Close(); err != nil {
		f.Close()
		return fmt.Errorf("queue: %w", err)
	}
	q.w = f
	q.segs = append(q.segs, segInfo{id: next})
	syncDir(q.dir)
	return nil
}

// enforceLimit drops the oldest segments while over MaxBytes, keeping the
// one being written.
func (q *Queue) enforceLimit() error {
	for q.total > q.cfg.MaxBytes && len(q.segs) > 1 {
		old := q.segs[0]
		dropped := old.records
		if old.id == q.st.Seg {
			dropped -= q.st.Idx
		}
		next := q.st
		next.Seg, next.Off, next.Idx = q.segs[1].id, 0, 0
		if dropped > 0 {
			next.Gaps = append(append([]Gap(nil), q.st.Gaps...), Gap{
				ID: ksuid.New().String(), Dropped: uint64(dropped), DroppedAt: q.cfg.Now().UTC()})
		}
		// The state names the next segment before the old one goes, so a
		// crash in between neither loses the gap nor counts it twice.
		if err := q.saveState(next); err != nil {
			return err
		}
		q.st = next
		if err := os.Remove(q.segPath(old.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("queue: drop segment: %w", err)
		}
		q.segs = q.segs[1:]
		q.total -= old.size
		if dropped > 0 {
			select {
			case q.drops <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// Drops is signalled when records were dropped unsent (a new Gap). A
// reader sending a batch it peeked before the drop stops on it: the
// dropped records are counted in the gap and must not arrive as well.
func (q *Queue) Drops() <-chan struct{} { return q.drops }

func (q *Queue) saveState(st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := q.statePath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("queue: state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("queue: state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("queue: state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("queue: state: %w", err)
	}
	if err := os.Rename(tmp, q.statePath()); err != nil {
		return fmt.Errorf("queue: state: %w", err)
	}
	syncDir(q.dir)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Peek returns up to max unacknowledged records (at most maxBytes in all,
// but at least one) from the oldest, and the cursor to Ack once they are
// safely delivered. It does not remove them.
func (q *Queue) Peek(max int, maxBytes int) ([][]byte, Cursor, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := Cursor{seg: q.st.Seg, off: q.st.Off, idx: q.st.Idx}
	var out [][]byte
	size := 0
	for si := 0; si < len(q.segs) && len(out) < max; si++ {
		s := q.segs[si]
		if s.id < c.seg {
			continue
		}
		if s.id > c.seg {
			c = Cursor{seg: s.id}
		}
		if c.idx >= s.records {
			continue
		}
		f, err := os.Open(q.segPath(s.id))
		if err != nil {
			return nil, c, fmt.Errorf("queue: %w", err)
		}
		r := bufio.NewReaderSize(io.NewSectionReader(f, c.off, s.size-c.off), 1<<16)
		hdr := make([]byte, 8)
		for c.idx < s.records && len(out) < max {
			if _, err := io.ReadFull(r, hdr); err != nil {
				f.Close()
				return nil, c, fmt.Errorf("queue: read %s: %w", q.segPath(s.id), err)
			}
			l := int(binary.LittleEndian.Uint32(hdr))
			if len(out) > 0 && size+l > maxBytes {
				f.Close()
				return out, c, nil
			}
			rec := make([]byte, l)
			if _, err := io.ReadFull(r, rec); err != nil {
				f.Close()
				return nil, c, fmt.Errorf("queue: read %s: %w", q.segPath(s.id), err)
			}
			out = append(out, rec)
			size += l
			c.off += 8 + int64(l)
			c.idx++
		}
		f.Close()
	}
	return out, c, nil
}

// Ack records that everything before c was delivered (fsynced), and
// removes segments read to the end. A cursor from before a drop is
// ignored where it points into a dropped segment.
func (q *Queue) Ack(c Cursor) error { return q.AckRefused(c, 0) }

// AckRefused is Ack for a batch of which refused records will never be
// delivered (the gateway refuses them for good, or they are unreadable):
// they are counted in a new gap in the same fsynced state, so a crash
// neither loses the count nor counts them twice.
func (q *Queue) AckRefused(c Cursor, refused uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c.seg < q.st.Seg || (c.seg == q.st.Seg && c.idx <= q.st.Idx) {
		return nil // the segment was dropped meanwhile (its gap counts them), or nothing new
	}
	next := q.st
	next.Seg, next.Off, next.Idx = c.seg, c.off, c.idx
	if refused > 0 {
		next.Gaps = append(append([]Gap(nil), q.st.Gaps...), Gap{
			ID: ksuid.New().String(), Dropped: refused, DroppedAt: q.cfg.Now().UTC()})
	}
	if err := q.saveState(next); err != nil {
		return err
	}
	q.st = next
	for len(q.segs) > 1 && q.segs[0].id < q.st.Seg {
		_ = os.Remove(q.segPath(q.segs[0].id))
		q.total -= q.segs[0].size
		q.segs = q.segs[1:]
	}
	return nil
}

// Gaps returns the drops not yet reported.
func (q *Queue) Gaps() []Gap {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Gap(nil), q.st.Gaps...)
}

// AckGap forgets a reported gap (fsynced).
func (q *Queue) AckGap(id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	next := q.st
	next.Gaps = nil
	for _, g := range q.st.Gaps {
		if g.ID != id {
			next.Gaps = append(next.Gaps, g)
		}
	}
	if len(next.Gaps) == len(q.st.Gaps) {
		return nil
	}
	if err := q.saveState(next); err != nil {
		return err
	}
	q.st = next
	return nil
}

// Depth is the number of records not yet acknowledged.
func (q *Queue) Depth() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	var n int64
	for _, s := range q.segs {
		switch {
		case s.id == q.st.Seg:
			n += int64(s.records - q.st.Idx)
		case s.id > q.st.Seg:
			n += int64(s.records)
		}
	}
	return n
}

// Bytes is the size of the segment files.
func (q *Queue) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}
