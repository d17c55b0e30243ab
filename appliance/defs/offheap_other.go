//go:build !linux

package defs

func mapAnon(n int) []byte { return nil }

func unmapAnon(b []byte) {}
