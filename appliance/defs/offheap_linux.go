//go:build linux

package defs

import "syscall"

// mapAnon returns n zeroed bytes of anonymous memory outside the Go heap,
// or nil when the kernel refuses (the caller then uses the heap).
func mapAnon(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil
	}
	return b
}

func unmapAnon(b []byte) { _ = syscall.Munmap(b) }
