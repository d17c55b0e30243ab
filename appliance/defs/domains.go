package defs

import (
	"hash/maphash"
	"math/bits"
	"runtime"
	"unsafe"
)

// domainSet is the compiled domain list, built for a million names in
// well under 100 MB and with no Go map or string per entry:
//
//   - the names sit back to back in fixed-size chunks of one arena (a
//     name never straddles two chunks, and growing never copies names);
//   - each entry is one uint64: arena offset (32 bits), name length (8),
//     label index (16), severity (2) and block (1);
//   - an open-addressing table (linear probing, load at most 1/2) of
//     uint32 slots, each 8 bits of the name's hash that its position does
//     not give (a filter that spares most name comparisons) and the entry
//     index + 1 in the low 24 bits (0 is empty). A slot's home position is
//     the top bits of the hash's upper 32 bits (the tag). Hence at most
//     MaxDomains names.
//
// Building has two steps: add appends names and entries as the list
// streams in; build then places them in the table in the order of their
// home positions (one counting-sort pass), so the table is written front
// to back instead of at random, which for a million names is several
// times faster. Duplicates meet in the table: the later line's metadata
// wins, the first copy of the name stays.
//
// About 8 bytes per entry and 8 per entry of table, plus the names: 1M
// domains of 22 characters take about 38 MB.
type domainSet struct {
	seed    maphash.Seed
	chunks  [][]byte
	entries []uint64
	table   []uint32
	shift   uint // 32 - log2(len(table))
	n       int  // distinct names (entries may hold overwritten duplicates)

	tags []uint32 // while building: the tag of each entry

	off *offHeap // the arrays mapped outside the Go heap (offheap.go)
}

// MaxDomains is how many domain entries (list lines) one Set holds at
// most: the table keeps an entry index in 24 bits.
const MaxDomains = 1<<24 - 1

const (
	domChunkBits = 20 // 1 MiB arena chunks
	domChunkSize = 1 << domChunkBits
	domMinTable  = 16
	// Lists longer than this are placed in home-position order.
	domSortMin  = 1 << 15
	domSortBits = 12
)

func newDomainSet(hint int) *domainSet {
	d := &domainSet{
		seed:    maphash.MakeSeed(),
		entries: make([]uint64, 0, hint),
		tags:    make([]uint32, 0, hint),
		table:   make([]uint32, domMinTable),
		shift:   32 - 4,
	}
	d.off = newOffHeap(d)
	return d
}

func (d *domainSet) len() int {
	if d == nil {
		return 0
	}
	return d.n
}

// packEntry and its accessors lay out one entry.
func packEntry(off uint32, n int, m meta) uint64 {
	e := uint64(off) | uint64(n)<<32 | uint64(m.label)<<40 | uint64(m.severity&3)<<56
	if m.block {
		e |= 1 << 58
	}
	return e
}

func entryMeta(e uint64) meta {
	return meta{label: uint16(e >> 40), severity: uint8(e>>56) & 3, block: e&(1<<58) != 0}
}

func (d *domainSet) name(e uint64) []byte {
	off := uint32(e)
	c := d.chunks[off>>domChunkBits]
	start := off & (domChunkSize - 1)
	return c[start : start+uint32(uint8(e>>32))]
}

// add appends a name (1 to 255 bytes, already normalised) to be placed by
// build.
func (d *domainSet) add(name []byte, m meta) {
	n := len(d.chunks)
	if n == 0 || len(d.chunks[n-1])+len(name) > cap(d.chunks[n-1]) {
		if n == 1 && cap(d.chunks[0]) < domChunkSize {
			// Small lists stay small: the first chunk doubles up to a
			// full chunk before further chunks are added.
			c := d.chunks[0]
			nc := make([]byte, len(c), min(2*cap(c)+len(name), domChunkSize))
			copy(nc, c)
			d.chunks[0] = nc
		}
		if n == 0 || len(d.chunks[n-1])+len(name) > cap(d.chunks[n-1]) {
			if n == 0 {
				d.chunks = append(d.chunks, make([]byte, 0, 4096))
			} else {
				d.chunks = append(d.chunks, d.off.bytes(domChunkSize)[:0])
			}
		}
	}
	last := len(d.chunks) - 1
	c := d.chunks[last]
	off := uint32(last)<<domChunkBits | uint32(len(c))
	d.chunks[last] = append(c, name...)
	d.entries = d.off.append64(d.entries, packEntry(off, len(name), m))
	d.tags = d.off.append32(d.tags, uint32(maphash.Bytes(d.seed, name)>>32))
}

// build places every added entry in the table.
func (d *domainSet) build() {
	size := domMinTable
	for size < 2*len(d.entries) {
		size <<= 1
	}
	d.shift = uint(32 - bits.TrailingZeros(uint(size)))
	d.n = 0
	if len(d.entries) < domSortMin {
		d.table = d.off.uint32s(size)
		for i, t := range d.tags {
			d.place(uint64(t)<<32 | uint64(i))
		}
	} else {
		// One stable counting-sort pass on the tags' top bits: entries
		// come out grouped by region of the table, in list order within
		// a group (so a later duplicate still comes later).
		var counts [1<<domSortBits + 1]int
		for _, t := range d.tags {
			counts[t>>(32-domSortBits)+1]++
		}
		for i := 1; i < len(counts); i++ {
			counts[i] += counts[i-1]
		}
		order := d.off.uint64s(len(d.tags))
		for i, t := range d.tags {
			b := t >> (32 - domSortBits)
			order[counts[b]] = uint64(t)<<32 | uint64(i)
			counts[b]++
		}
		d.off.release(unsafe.Pointer(unsafe.SliceData(d.tags)))
		d.tags = nil
		d.table = d.off.uint32s(size)
		for _, k := range order {
			d.place(k)
		}
		d.off.release(unsafe.Pointer(unsafe.SliceData(order)))
	}
	if d.tags != nil {
		d.off.release(unsafe.Pointer(unsafe.SliceData(d.tags)))
	}
	d.tags = nil
}

// check8 is the part of a tag stored in a slot beside the index: the
// 8 bits just below those the position takes (tables up to 2^24 slots),
// or the lowest 8 when the table is larger.
func (d *domainSet) check8(tag uint32) uint32 {
	if d.shift >= 8 {
		return tag >> (d.shift - 8) & 0xff
	}
	return tag & 0xff
}

// place puts entry uint32(k) with tag k>>32 in the table, or gives its
// metadata to the same name placed before.
func (d *domainSet) place(k uint64) {
	tag, i := uint32(k>>32), uint32(k)
	chk := d.check8(tag) << 24
	mask := uint32(len(d.table) - 1)
	for pos := tag >> d.shift; ; pos = (pos + 1) & mask {
		s := d.table[pos]
		if s == 0 {
			d.table[pos] = chk | (i + 1)
			d.n++
			return
		}
		if s&0xff000000 == chk {
			j := s&0xffffff - 1
			if first := d.entries[j]; string(d.name(first)) == string(d.name(d.entries[i])) {
				d.entries[j] = packEntry(uint32(first), int(uint8(first>>32)), entryMeta(d.entries[i]))
				runtime.KeepAlive(d)
				return
			}
		}
	}
}

// lookup finds a listed name exactly (after build). Nothing it returns
// points into the set's arrays (they may be unmapped once d is gone).
func (d *domainSet) lookup(name string) (uint64, bool) {
	tag := uint32(maphash.String(d.seed, name) >> 32)
	chk := d.check8(tag) << 24
	mask := uint32(len(d.table) - 1)
	for pos := tag >> d.shift; ; pos = (pos + 1) & mask {
		s := d.table[pos]
		if s == 0 {
			return 0, false
		}
		if s&0xff000000 == chk {
			if e := d.entries[s&0xffffff-1]; string(d.name(e)) == name {
				// The names may be off the heap: d must outlive the
				// comparison (its cleanup unmaps them).
				runtime.KeepAlive(d)
				return e, true
			}
		}
	}
}
