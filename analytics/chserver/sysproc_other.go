//go:build !linux

package chserver

import "syscall"

// sysProcAttr puts the server in its own process group. Outside Linux there
// is no parent-death signal: a crashed parent may leave the server running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
