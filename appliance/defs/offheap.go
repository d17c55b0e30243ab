package defs

import (
	"runtime"
	"unsafe"
)

// The large arrays of a domain set (arena chunks, entries, table) are
// pointer-free and live as long as the Set, so on Linux they are mapped
// outside the Go heap: they then do not count towards the collector's
// heap goal, which with the default GOGC would otherwise let the heap
// grow by as much again as a million-domain set (tens of MB of headroom
// the agent never uses). They are unmapped when the set becomes
// unreachable (runtime.AddCleanup). Small arrays stay on the heap.

// offHeapMin is the smallest array worth a mapping of its own.
const offHeapMin = 64 << 10

// offHeap is the mappings of one domain set; it holds no pointer back to
// the set, so the set can be collected and the cleanup run.
type offHeap struct{ regions [][]byte }

func (o *offHeap) free() {
	for _, r := range o.regions {
		unmapAnon(r)
	}
	o.regions = nil
}

// bytes returns n zeroed bytes with capacity n, off the heap when n is
// large and the kernel agrees.
func (o *offHeap) bytes(n int) []byte {
	if n >= offHeapMin {
		if b := mapAnon(n); b != nil {
			o.regions = append(o.regions, b)
			return b
		}
	}
	return make([]byte, n)
}

func (o *offHeap) uint32s(n int) []uint32 {
	if n*4 < offHeapMin {
		return make([]uint32, n)
	}
	b := o.bytes(n * 4)
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

func (o *offHeap) uint64s(n int) []uint64 {
	if n*8 < offHeapMin {
		return make([]uint64, n)
	}
	b := o.bytes(n * 8)
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// release unmaps b at once when it is one of o's mappings (a temporary
// array, or one outgrown); a heap array is left to the collector.
func (o *offHeap) release(b unsafe.Pointer) {
	for i, r := range o.regions {
		if unsafe.Pointer(unsafe.SliceData(r)) == b {
			unmapAnon(r)
			o.regions = append(o.regions[:i], o.regions[i+1:]...)
			return
		}
	}
}

// append64 and append32 are append for the entries and tags, growing
// them off the heap and unmapping the outgrown array at once, so loading
// a big list leaves no garbage behind.
func (o *offHeap) append64(s []uint64, v uint64) []uint64 {
	if len(s) == cap(s) && (len(s)+1)*8 >= offHeapMin {
		n := o.uint64s(max(2*cap(s), offHeapMin/8))[:len(s)]
		copy(n, s)
		if cap(s) > 0 {
			o.release(unsafe.Pointer(unsafe.SliceData(s)))
		}
		s = n
	}
	return append(s, v)
}

func (o *offHeap) append32(s []uint32, v uint32) []uint32 {
	if len(s) == cap(s) && (len(s)+1)*4 >= offHeapMin {
		n := o.uint32s(max(2*cap(s), offHeapMin/4))[:len(s)]
		copy(n, s)
		if cap(s) > 0 {
			o.release(unsafe.Pointer(unsafe.SliceData(s)))
		}
		s = n
	}
	return append(s, v)
}

// newOffHeap ties the mappings' lifetime to d's.
func newOffHeap(d *domainSet) *offHeap {
	o := &offHeap{}
	runtime.AddCleanup(d, func(o *offHeap) { o.free() }, o)
	return o
}
