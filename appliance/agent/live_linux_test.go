package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mimamori/mimamori/appliance/agent"
	"github.com/mimamori/mimamori/appliance/capture"
	"github.com/mimamori/mimamori/appliance/inspect"
	"github.com/mimamori/mimamori/appliance/pcapgen"
	"github.com/mimamori/mimamori/events"
)

func run(t *testing.T, args ...string) error {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// printfEscape writes b as a bash printf format of \xHH escapes.
func printfEscape(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, `\x%02x`, c)
	}
	return s.String()
}

// TestLiveCaptureOnVethInNamespace creates a network namespace joined to
// this one by a veth pair, captures live (AF_PACKET) on the near end, and
// has a client in the namespace send a DNS query, an HTTP request on port
// 8080 and a TLS ClientHello on port 9443 naming listed domains.
func TestLiveCaptureOnVethInNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("live capture test skipped: creating network namespaces and AF_PACKET sockets needs root (CAP_SYS_ADMIN, CAP_NET_RAW)")
	}
	id := os.Getpid() % 100000
	ns, host, peer := fmt.Sprintf("mmtest%d", id), fmt.Sprintf("mmh%d", id), fmt.Sprintf("mmp%d", id)
	if err := run(t, "ip", "netns", "add", ns); err != nil {
		if strings.Contains(err.Error(), "not permitted") || strings.Contains(err.Error(), "Permission denied") {
			t.Skipf("live capture test skipped: network namespaces are not permitted here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = run(t, "ip", "link", "del", host)
		_ = run(t, "ip", "netns", "del", ns)
	})
	hostIP, clientIP := "10.231.77.1", "10.231.77.2"
	for _, c := range [][]string{
		{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", ns},
		{"ip", "addr", "add", hostIP + "/24", "dev", host},
		{"ip", "link", "set", host, "up"},
		{"ip", "netns", "exec", ns, "ip", "addr", "add", clientIP + "/24", "dev", peer},
		{"ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"},
		{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
	} {
		if err := run(t, c...); err != nil {
			t.Fatal(err)
		}
	}
	// Servers on the host side so the TCP handshakes complete.
	for _, port := range []string{"8080", "9443"} {
		ln, err := net.Listen("tcp", hostIP+":"+port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
			}
		}()
	}

	var out bytes.Buffer
	a, err := agent.New(agent.Config{Zones: inspect.MustZones("lan=" + clientIP + "/32"),
		Store:      newStore(t, 10, "evil-c2.example 3 c2\nphish.example 2 phishing\ntls-bad.example 3 c2\n"),
		FoldWindow: 50 * time.Millisecond, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	liveDone := make(chan error, 1)
	var live capture.LiveStats
	go func() {
		var err error
		live, err = capture.Live(ctx, host, 0, func(d []byte, ts time.Time, w int) { a.Process(d, ts, w) }, a.Tick)
		liveDone <- err
	}()

	dns := printfEscape(pcapgen.DNSQuery("www.evil-c2.example", 0x4242))
	hello := printfEscape(pcapgen.ClientHello("tls-bad.example"))
	script := fmt.Sprintf(`printf '%s' > /dev/udp/%s/53
exec 3<>/dev/tcp/%s/8080 && printf 'GET /x HTTP/1.1\r\nHost: phish.example:8080\r\n\r\n' >&3 && exec 3>&-
exec 4<>/dev/tcp/%s/9443 && printf '%s' >&4 && exec 4>&-
`, dns, hostIP, hostIP, hostIP, hello)
	// The socket may not be bound yet when the first round is sent: send
	// rounds until the three detections were emitted (folded repeats are
	// one alert each).
	deadline := time.Now().Add(60 * time.Second)
	for a.Alerts() < 3 && time.Now().Before(deadline) {
		if err := run(t, "ip", "netns", "exec", ns, "bash", "-c", script); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-liveDone; err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if live.Frames == 0 {
		t.Fatal("live capture saw no frames")
	}
	got := map[string]events.Alert{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var al events.Alert
		if err := json.Unmarshal(sc.Bytes(), &al); err != nil {
			t.Fatal(err)
		}
		got[al.Indicator+"/"+al.Protocol] = al
	}
	for _, want := range []struct {
		key   string
		dport int
	}{
		{"evil-c2.example/udp", 53}, {"phish.example/tcp", 8080}, {"tls-bad.example/tcp", 9443},
	} {
		al, ok := got[want.key]
		if !ok {
			t.Errorf("no alert %s; alerts: %v", want.key, got)
			continue
		}
		if al.SrcIP != clientIP || al.DstIP != hostIP || al.DstPort != want.dport || al.Zones != "LAN>WAN" || al.Kind != events.KindDomain {
			t.Errorf("alert %s: %+v", want.key, al)
		}
	}
}
