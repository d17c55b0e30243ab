package events_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
)

func deviceAlert(url, domain, file string) events.Alert {
	return events.Alert{ID: ksuid.New().String(), DetectedAt: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC),
		Severity: 3, Kind: events.KindURL, Indicator: url, Label: "C2 " + file, Action: events.ActionDetected,
		SrcIP: "192.168.1.10", SrcPort: 51000, DstIP: "203.0.113.9", DstPort: 80, Protocol: "tcp", Zones: "LAN>WAN",
		URL: url, Domain: domain, FileName: file, Count: 1}
}

// Evidence longer than the limits, or not UTF-8, still makes an alert the
// gateway accepts, and what is kept is the start of it.
func TestClampMakesOversizedEvidenceValid(t *testing.T) {
	long := "http://bad.example/" + strings.Repeat("あ", 3000) // 9 kB, cut inside a character
	a := deviceAlert(long, strings.Repeat("x", 300)+".example", "report\xff\xfe.exe")
	if err := a.ValidateFromDevice(); err == nil {
		t.Fatal("the oversized alert is valid before Clamp: the test proves nothing")
	}
	a.Clamp()
	if err := a.ValidateFromDevice(); err != nil {
		t.Fatalf("after Clamp: %v", err)
	}
	if !strings.HasPrefix(long, a.URL) || len(a.URL) < 2040 || !utf8.ValidString(a.URL) {
		t.Errorf("url kept %d bytes, valid UTF-8 %v; want the start of it, about 2048 bytes", len(a.URL), utf8.ValidString(a.URL))
	}
	if a.FileName != "report\uFFFD.exe" {
		t.Errorf("file name %q", a.FileName)
	}
	short := deviceAlert("http://ok.example/a", "ok.example", "a.exe")
	before := short
	short.Clamp()
	if short != before {
		t.Errorf("Clamp changed a valid alert: %+v", short)
	}
}

// FuzzAlertClamp: whatever the appliance saw, a clamped alert validates and
// survives a JSON round trip unchanged.
func FuzzAlertClamp(f *testing.F) {
	f.Add("http://bad.example/"+strings.Repeat("%", 3000), "bad.example", "a.exe")
	f.Add("\xff\xfe", strings.Repeat("é", 200), strings.Repeat("\x80", 300))
	f.Fuzz(func(t *testing.T, url, domain, file string) {
		if url == "" {
			url = "x" // the indicator is required; that is not Clamp's to invent
		}
		a := deviceAlert(url, domain, file)
		a.Clamp()
		if err := a.ValidateFromDevice(); err != nil {
			t.Fatalf("clamped alert invalid: %v", err)
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var back events.Alert
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back != a {
			t.Fatalf("round trip changed the alert:\n%+v\n%+v", a, back)
		}
	})
}
