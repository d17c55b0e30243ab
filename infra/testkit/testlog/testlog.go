// Package testlog gives a test a logger that keeps everything at debug
// level (the services' own log and the Kafka clients' group lifecycle) and
// prints its end when the test fails, so that a failure seen only in CI
// says what the services and their consumers were doing.
package testlog

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// Lines is how many of the last lines a failing test prints.
const Lines = 300

// New returns the test's logger. With -v it writes warnings and errors to
// stderr instead of keeping them.
func New(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		t.Logf("the log, last %d of %d lines:\n%s", min(len(lines), Lines), len(lines),
			strings.Join(lines[max(len(lines)-Lines, 0):], "\n"))
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
