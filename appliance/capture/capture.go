// Package capture delivers frames to the inspection engine: from pcap and
// pcapng files (one after another, as fast as possible or at the speed
// they were recorded) with gopacket's pcapgo, or live from a Linux
// interface through an AF_PACKET socket (no libpcap, no cgo).
package capture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Handler receives each frame. data is only valid during the call.
type Handler func(data []byte, ts time.Time, wireLen int)

// FileStats counts what reading files gave.
type FileStats struct {
	Files   int
	Frames  uint64
	Skipped uint64 // frames of a link type other than Ethernet
}

// ErrNotCapture is returned for a file that is neither pcap nor pcapng.
var ErrNotCapture = errors.New("not a pcap or pcapng file")

// ReadFiles reads every file in order and hands each Ethernet frame to h.
// With realtime, frames are delivered at the pace of their timestamps.
// tick, when not nil, is called with a frame's timestamp, after h, each
// time the capture's clock has moved a second or more since the last call
// (as Live calls it on the wall clock), so that fold windows close and
// counters are published while a long file is read, not only at its end.
// A truncated last record ends that file without error (a capture cut
// short by a crash is still read); an unreadable file is an error.
func ReadFiles(ctx context.Context, paths []string, realtime bool, h Handler, tick func(time.Time)) (FileStats, error) {
	var st FileStats
	if tick != nil {
		var last time.Time
		inner := h
		h = func(data []byte, ts time.Time, wire int) {
			inner(data, ts, wire)
			if d := ts.Sub(last); d >= time.Second || d < 0 {
				last = ts
				tick(ts)
			}
		}
	}
	for _, p := range paths {
		if err := readFile(ctx, p, realtime, h, &st); err != nil {
			return st, err
		}
		st.Files++
	}
	return st, nil
}

func readFile(ctx context.Context, path string, realtime bool, h Handler, st *FileStats) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return fmt.Errorf("capture: %s: %w", path, ErrNotCapture)
	}
	var next func() ([]byte, time.Time, int, error)
	var link layers.LinkType
	if string(magic) == "\x0a\x0d\x0d\x0a" {
		r, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{})
		if err != nil {
			return fmt.Errorf("capture: %s: %w", path, err)
		}
		link = r.LinkType()
		next = func() ([]byte, time.Time, int, error) {
			d, ci, err := r.ZeroCopyReadPacketData()
			return d, ci.Timestamp, ci.Length, err
		}
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return fmt.Errorf("capture: %s: %w: %v", path, ErrNotCapture, err)
		}
		link = r.LinkType()
		next = func() ([]byte, time.Time, int, error) {
			d, ci, err := r.ZeroCopyReadPacketData()
			return d, ci.Timestamp, ci.Length, err
		}
	}
	var first time.Time
	var start time.Time
	for n := 0; ; n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		data, ts, wire, err := next()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			// A corrupt record header: the rest of the file cannot be
			// framed. Count it and stop reading this file.
			st.Skipped++
			return nil
		}
		st.Frames++
		if link != layers.LinkTypeEthernet {
			st.Skipped++
			continue
		}
		if realtime {
			if first.IsZero() {
				first, start = ts, time.Now()
			} else if wait := ts.Sub(first) - time.Since(start); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
		}
		h(data, ts, wire)
	}
}
