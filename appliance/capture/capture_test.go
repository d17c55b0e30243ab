package capture_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/mimamori/mimamori/appliance/capture"
	"github.com/mimamori/mimamori/appliance/pcapgen"
)

// writeCapture writes a generated capture and returns its path.
func writeCapture(t *testing.T, name string, cfg pcapgen.Config) (string, pcapgen.Truth) {
	t.Helper()
	var buf bytes.Buffer
	tr, err := pcapgen.Write(&buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, tr
}

type frame struct {
	ts   time.Time
	wire int
	data []byte
}

func readAll(t *testing.T, ctx context.Context, realtime bool, paths ...string) ([]frame, capture.FileStats, error) {
	t.Helper()
	var got []frame
	st, err := capture.ReadFiles(ctx, paths, realtime, func(d []byte, ts time.Time, wire int) {
		got = append(got, frame{ts, wire, append([]byte(nil), d...)})
	}, nil)
	return got, st, err
}

// TestReadPcapAndPcapngFastAndRecorded reads the same generated traffic
// from a pcap and a pcapng file, one after the other, at both speeds:
// every frame arrives once, in file order, with its timestamp and bytes.
func TestReadPcapAndPcapngFastAndRecorded(t *testing.T) {
	cfg := pcapgen.Config{Seed: 7, Packets: 300, Gap: 20 * time.Microsecond}
	pcap, tr := writeCapture(t, "a.pcap", cfg)
	cfg.PcapNG = true
	ng, trNG := writeCapture(t, "a.pcapng", cfg)
	if tr.Frames != trNG.Frames {
		t.Fatalf("generator not deterministic: %d vs %d frames", tr.Frames, trNG.Frames)
	}
	for _, realtime := range []bool{false, true} {
		got, st, err := readAll(t, context.Background(), realtime, pcap, ng)
		if err != nil {
			t.Fatal(err)
		}
		if st.Files != 2 || st.Frames != uint64(2*tr.Frames) || st.Skipped != 0 || len(got) != 2*tr.Frames {
			t.Fatalf("realtime=%v: stats %+v, %d frames; want 2 files, %d frames", realtime, st, len(got), 2*tr.Frames)
		}
		n := tr.Frames
		for i := 0; i < n; i++ {
			a, b := got[i], got[n+i]
			if !a.ts.Equal(b.ts) || !bytes.Equal(a.data, b.data) || a.wire != len(a.data) {
				t.Fatalf("realtime=%v: frame %d differs between pcap and pcapng", realtime, i)
			}
			if want := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC).Add(time.Duration(i+1) * cfg.Gap); !a.ts.Equal(want) {
				t.Fatalf("realtime=%v: frame %d at %v, want %v", realtime, i, a.ts, want)
			}
			if i > 0 && !a.ts.After(got[i-1].ts) {
				t.Fatalf("realtime=%v: frame %d at %v not after frame %d at %v", realtime, i, a.ts, i-1, got[i-1].ts)
			}
		}
	}
}

// TestRecordedSpeedWaitsForTimestamps proves pacing without timing it: a
// file whose second frame was recorded an hour after the first delivers
// only the first before the context is cancelled.
func TestRecordedSpeedWaitsForTimestamps(t *testing.T) {
	p := filepath.Join(t.TempDir(), "slow.pcap")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	frameBytes := make([]byte, 60)
	for i, ts := range []time.Time{t0, t0.Add(time.Hour)} {
		frameBytes[0] = byte(i)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: 60, Length: 60}, frameBytes); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var n int
	_, err = capture.ReadFiles(ctx, []string{p}, true, func([]byte, time.Time, int) { n++; cancel() }, nil)
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Fatalf("recorded speed: %d frames delivered, err %v; want 1 and context.Canceled", n, err)
	}
	_, st, err := readAll(t, context.Background(), false, p)
	if err != nil || st.Frames != 2 {
		t.Fatalf("fast: %+v %v; want both frames at once", st, err)
	}
}

// TestBadInputIsCountedNotFatal: a capture cut mid-record still gives its
// whole frames; a non-Ethernet link type is counted as skipped; a file that
// is no capture at all is an error naming it.
func TestBadInputIsCountedNotFatal(t *testing.T) {
	p, tr := writeCapture(t, "cut.pcap", pcapgen.Config{Seed: 3, Packets: 50})
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, b[:len(b)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	got, st, err := readAll(t, context.Background(), false, p)
	if err != nil || len(got) != tr.Frames-1 {
		t.Fatalf("truncated file: %d frames, %v; want %d", len(got), err, tr.Frames-1)
	}

	raw := filepath.Join(t.TempDir(), "raw.pcap")
	f, _ := os.Create(raw)
	w := pcapgo.NewWriter(f)
	_ = w.WriteFileHeader(65535, layers.LinkTypeRaw)
	_ = w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: 20, Length: 20}, make([]byte, 20))
	f.Close()
	got, st, err = readAll(t, context.Background(), false, raw)
	if err != nil || len(got) != 0 || st.Skipped != 1 {
		t.Fatalf("raw IP link type: %d delivered, %+v, %v; want 0 delivered, 1 skipped", len(got), st, err)
	}

	junk := filepath.Join(t.TempDir(), "junk.pcap")
	_ = os.WriteFile(junk, []byte("this is not a capture file at all"), 0o644)
	if _, _, err := readAll(t, context.Background(), false, junk); !errors.Is(err, capture.ErrNotCapture) {
		t.Fatalf("junk file: %v; want ErrNotCapture", err)
	}
}

// While a file is read, tick follows the capture's clock: once per second
// of capture time, after the frames up to then, with their timestamp, so a
// long file publishes counters and closes fold windows as it goes.
func TestReadFilesTicksOnCaptureTime(t *testing.T) {
	p, _ := writeCapture(t, "slow.pcap", pcapgen.Config{Seed: 3, Packets: 200, Gap: 25 * time.Millisecond}) // ~5 s of traffic
	var first, last time.Time
	frames := 0
	type tickAt struct {
		ts     time.Time
		frames int
	}
	var ticks []tickAt
	_, err := capture.ReadFiles(context.Background(), []string{p}, false, func(_ []byte, ts time.Time, _ int) {
		if first.IsZero() {
			first = ts
		}
		last = ts
		frames++
	}, func(ts time.Time) { ticks = append(ticks, tickAt{ts, frames}) })
	if err != nil {
		t.Fatal(err)
	}
	span := last.Sub(first)
	if span < 3*time.Second {
		t.Fatalf("the capture spans %s; the test needs seconds", span)
	}
	if want := int(span/time.Second) + 1; len(ticks) < want-1 || len(ticks) > want+1 {
		t.Fatalf("%d ticks over %s of capture time, want about %d", len(ticks), span, want)
	}
	for i, tk := range ticks {
		if tk.frames == 0 || (i > 0 && (tk.ts.Sub(ticks[i-1].ts) < time.Second || tk.frames <= ticks[i-1].frames)) {
			t.Fatalf("tick %d at %s after %d frames (previous %+v)", i, tk.ts, tk.frames, ticks[max(i-1, 0)])
		}
	}
}
