package chserver

import "syscall"

// sysProcAttr puts the server in its own process group (so Close can signal
// it and any helpers) and asks Linux to SIGTERM it when our thread dies, so a
// crashed parent never leaves a server holding the data folder. Pdeathsig is
// tied to the OS thread that forked; the Go runtime only retires threads of
// goroutines that exit while locked, which nothing here does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
