// Package tlsca provides the embedded TLS default: a local certificate
// authority and a server certificate signed by it, generated on first start
// and reused afterwards, plus the loader that turns certificate files
// (generated or supplied by an operator) into a server tls.Config.
package tlsca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the directory given to Ensure.
const (
	CACertFile     = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server-key.pem"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 397 * 24 * time.Hour
	// renewBefore: a certificate that expires sooner than this is replaced.
	renewBefore = 30 * 24 * time.Hour
)

// DefaultHosts are always in the server certificate, so a local client can
// reach the server whatever the configuration says.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// Paths are the files Ensure wrote or found.
type Paths struct {
	Dir        string
	CACert     string // ca.pem: give this to clients to trust
	CAKey      string // ca-key.pem, mode 0600
	ServerCert string // server.pem
	ServerKey  string // server-key.pem, mode 0600
}

// Ensure makes dir hold a local CA (ECDSA P-256) and a server certificate
// signed by it, valid for localhost, 127.0.0.1, ::1 and hosts (DNS names
// or IP addresses). Existing files are reused; the server certificate is
// regenerated when it expires within 30 days, is not signed by the CA, or
// does not cover exactly the wanted names. The CA is regenerated only when
// it is missing both files or expires within 30 days (which also renews
// the server certificate); a half-present or unreadable CA is an error,
// because silently replacing it would break every client that trusts it.
func Ensure(dir string, hosts []string) (Paths, error) {
	return ensure(dir, hosts, time.Now())
}

func ensure(dir string, hosts []string, now time.Time) (Paths, error) {
	p := Paths{
		Dir:        dir,
		CACert:     filepath.Join(dir, CACertFile),
		CAKey:      filepath.Join(dir, CAKeyFile),
		ServerCert: filepath.Join(dir, ServerCertFile),
		ServerKey:  filepath.Join(dir, ServerKeyFile),
	}
	dns, ips, err := splitHosts(hosts)
	if err != nil {
		return p, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return p, fmt.Errorf("tls: create %s: %w", dir, err)
	}
	ca, caKey, err := loadPair(p.CACert, p.CAKey)
	switch {
	case errors.Is(err, errMissing):
		ca, caKey, err = newCA(p, now)
		if err != nil {
			return p, err
		}
	case err != nil:
		return p, fmt.Errorf("tls: local CA: %w (delete %s and %s to generate a new CA)", err, p.CACert, p.CAKey)
	case ca.NotAfter.Sub(now) < renewBefore:
		ca, caKey, err = newCA(p, now)
		if err != nil {
			return p, err
		}
	}
	if serverCertOK(p, ca, dns, ips, now) {
		return p, nil
	}
	if err := newServerCert(p, ca, caKey, dns, ips, now); err != nil {
		return p, err
	}
	return p, nil
}

// ServerTLS loads a certificate and key (PEM) into a server configuration
// that accepts TLS 1.2 and later.
func ServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s and %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}, nil
}

// CertPool reads a PEM CA certificate file into a pool for clients.
func CertPool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

var errMissing = errors.New("missing")

// splitHosts returns the sorted, deduplicated DNS names and IPs to certify.
func splitHosts(hosts []string) ([]string, []net.IP, error) {
	var dns []string
	var ips []net.IP
	for _, h := range append(slices.Clone(defaultHosts), hosts...) {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if strings.ContainsAny(h, " /:@") {
			return nil, nil, fmt.Errorf("tls: %q is neither a host name nor an IP address", h)
		}
		if !slices.Contains(dns, h) {
			dns = append(dns, h)
		}
	}
	slices.Sort(dns)
	slices.SortFunc(ips, func(a, b net.IP) int { return bytes.Compare(a.To16(), b.To16()) })
	return dns, ips, nil
}

func loadPair(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	cb, cerr := os.ReadFile(certFile)
	kb, kerr := os.ReadFile(keyFile)
	if errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist) {
		return nil, nil, errMissing
	}
	if cerr != nil {
		return nil, nil, cerr
	}
	if kerr != nil {
		return nil, nil, kerr
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return nil, nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: key cannot sign", keyFile)
	}
	return pair.Leaf, signer, nil
}

func serverCertOK(p Paths, ca *x509.Certificate, dns []string, ips []net.IP, now time.Time) bool {
	cert, _, err := loadPair(p.ServerCert, p.ServerKey)
	if err != nil {
		return false
	}
	if cert.CheckSignatureFrom(ca) != nil || cert.NotAfter.Sub(now) < renewBefore || now.Before(cert.NotBefore) {
		return false
	}
	gotDNS := slices.Sorted(slices.Values(cert.DNSNames))
	if !slices.Equal(gotDNS, dns) || len(cert.IPAddresses) != len(ips) {
		return false
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func newCA(p Paths, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"mimamori"}, CommonName: "mimamori local CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: parse CA certificate: %w", err)
	}
	if err := writePair(p.CACert, p.CAKey, der, key); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func newServerCert(p Paths, ca *x509.Certificate, caKey crypto.Signer, dns []string, ips []net.IP, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tls: generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"mimamori"}, CommonName: dns[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("tls: create server certificate: %w", err)
	}
	return writePair(p.ServerCert, p.ServerKey, der, key)
}

func serial() *big.Int {
	// 128 random bits; crypto/rand.Int does not fail in Go 1.24+.
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n.Add(n, big.NewInt(1))
}

// writePair writes the key before the certificate, each through a
// temporary file and a rename, so a crash never leaves a certificate whose
// key is from another generation unnoticed (loadPair checks they match).
func writePair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("tls: encode key: %w", err)
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("tls: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("tls: write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("tls: write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tls: write %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}
