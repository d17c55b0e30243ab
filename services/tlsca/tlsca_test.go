package tlsca

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"
)

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(file, file[:len(file)-len(".pem")]+"-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}

func TestEnsureGeneratesAndReuses(t *testing.T) {
	dir := t.TempDir() + "/tls"
	p, err := Ensure(dir, []string{"ingest.example.com", "10.0.0.7", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{p.CACert, 0o644}, {p.CAKey, 0o600}, {p.ServerCert, 0o644}, {p.ServerKey, 0o600}} {
		st, err := os.Stat(f.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != f.mode {
			t.Errorf("%s: mode %o, want %o", f.name, got, f.mode)
		}
	}
	ca, srv := readCert(t, p.CACert), readCert(t, p.ServerCert)
	if !ca.IsCA || srv.IsCA {
		t.Fatalf("IsCA: ca %v, server %v", ca.IsCA, srv.IsCA)
	}
	if err := srv.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("server certificate not signed by the CA: %v", err)
	}
	if got, want := srv.DNSNames, []string{"ingest.example.com", "localhost"}; !slices.Equal(got, want) {
		t.Errorf("DNS names %v, want %v", got, want)
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.0.0.7"} {
		if !slices.ContainsFunc(srv.IPAddresses, net.ParseIP(ip).Equal) {
			t.Errorf("IP %s missing from %v", ip, srv.IPAddresses)
		}
	}
	if srv.PublicKeyAlgorithm != x509.ECDSA || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("keys are not ECDSA")
	}

	// Second start, same names: nothing changes.
	if _, err := Ensure(dir, []string{"10.0.0.7", "ingest.example.com"}); err != nil {
		t.Fatal(err)
	}
	if again := readCert(t, p.ServerCert); !again.Equal(srv) {
		t.Fatal("server certificate regenerated although nothing changed")
	}

	// Names changed: new server certificate, same CA.
	if _, err := Ensure(dir, []string{"other.example.com"}); err != nil {
		t.Fatal(err)
	}
	changed := readCert(t, p.ServerCert)
	if changed.Equal(srv) || !slices.Contains(changed.DNSNames, "other.example.com") {
		t.Fatalf("server certificate not regenerated for new names: %v", changed.DNSNames)
	}
	if !readCert(t, p.CACert).Equal(ca) {
		t.Fatal("CA regenerated although it was valid")
	}

	// Close to expiry: renewed.
	if _, err := ensure(dir, []string{"other.example.com"}, time.Now().Add(370*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if renewed := readCert(t, p.ServerCert); renewed.Equal(changed) {
		t.Fatal("server certificate expiring within 30 days was not renewed")
	}
}

func TestEnsureRefusesHalfCA(t *testing.T) {
	dir := t.TempDir()
	p, err := Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.CAKey); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, nil); err == nil {
		t.Fatal("a CA certificate without its key was silently replaced")
	}
}

// A client that trusts only ca.pem reaches a server using ServerTLS.
func TestServerTLSHandshake(t *testing.T) {
	p, err := Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ServerTLS(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion %x, want TLS 1.2", cfg.MinVersion)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	pool, err := CertPool(p.CACert)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		resp, err := c.Get("https://" + net.JoinHostPort(host, port))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		resp.Body.Close()
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get(srv.URL); err == nil {
		t.Fatal("TLS 1.1 client was accepted")
	}
}
