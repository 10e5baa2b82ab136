package luachan_test

// -tls-cert and -tls-key: HTTPS and WSS served by the real binary, a certificate
// replaced on disk picked up by the next handshake, and bad files refused at the start.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA signs the certificates the TLS tests serve.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(tb testing.TB) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "luachan test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf returns the PEM certificate and key of a server certificate for 127.0.0.1
// whose serial number is serial, which tells the tests which one a handshake saw.
func (ca *testCA) leaf(tb testing.TB, serial int64) (certPEM, keyPEM []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: fmt.Sprintf("luachan test %d", serial)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// writeFileAt replaces name with data the way a renewal does (a new file renamed over
// the old), stamped with mod so that the change shows whatever the clock's resolution.
func writeFileAt(tb testing.TB, name string, data []byte, mod time.Time) {
	tb.Helper()
	tmp := name + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chtimes(tmp, mod, mod); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		tb.Fatal(err)
	}
}

// servedSerial makes a new TLS handshake with addr, trusting only ca, and returns the
// serial number of the certificate the server showed.
func servedSerial(tb testing.TB, addr string, ca *testCA) int64 {
	tb.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: readTimeout}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		tb.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	mod := time.Now().Add(-time.Minute)
	c1, k1 := ca.leaf(t, 101)
	writeFileAt(t, certFile, c1, mod)
	writeFileAt(t, keyFile, k1, mod)
	s := startServer(t, examplesPlus(t, nil), "-tls-cert", certFile, "-tls-key", keyFile)

	if got := servedSerial(t, s.addr, ca); got != 101 {
		t.Fatalf("first handshake: certificate %d, want 101", got)
	}
	// HTTPS answers; plain HTTP on the same port does not get a page.
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := &http.Client{Timeout: readTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get("https://" + s.addr + "/healthz")
	if err != nil {
		t.Fatalf("GET https /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET https /healthz: %d, want 200", resp.StatusCode)
	}
	if resp, err := httpClient.Get(s.url("/healthz")); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP /healthz answered 200 on the TLS port")
		}
	}
	// which net/http logs as free text; the log has a stable msg with the details as values
	s.log.waitFor(t, readTimeout, `msg="TLS handshake failed"`, "remote=127.0.0.1:", "err=")

	// A renewed pair, renamed over the old files: the next handshake shows it.
	c2, k2 := ca.leaf(t, 102)
	mod = mod.Add(time.Second)
	writeFileAt(t, certFile, c2, mod)
	writeFileAt(t, keyFile, k2, mod)
	if got := servedSerial(t, s.addr, ca); got != 102 {
		t.Fatalf("handshake after the renewal: certificate %d, want 102", got)
	}
	s.log.waitFor(t, readTimeout, "TLS certificate reloaded")

	// A bad pair (a key that is not the certificate's): the last good one stays, logged.
	c3, _ := ca.leaf(t, 103)
	mod = mod.Add(time.Second)
	writeFileAt(t, certFile, c3, mod)
	if got := servedSerial(t, s.addr, ca); got != 102 {
		t.Fatalf("handshake after a bad pair: certificate %d, want 102 kept", got)
	}
	s.log.waitFor(t, readTimeout, "TLS certificate not reloaded", "err=")

	// Mended: the key follows, and the new pair is served.
	c4, k4 := ca.leaf(t, 104)
	mod = mod.Add(time.Second)
	writeFileAt(t, certFile, c4, mod)
	writeFileAt(t, keyFile, k4, mod)
	if got := servedSerial(t, s.addr, ca); got != 104 {
		t.Fatalf("handshake after the mended pair: certificate %d, want 104", got)
	}
}

// TestTLSPhxClient runs the Go Phoenix client over wss, trusting the test's CA through
// SSL_CERT_FILE (its dialer uses the system roots). Not parallel: it sets the variable
// for the client it starts.
func TestTLSPhxClient(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	c, k := ca.leaf(t, 201)
	for name, data := range map[string][]byte{certFile: c, keyFile: k, caFile: ca.pem} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, examplesPlus(t, nil), "-tls-cert", certFile, "-tls-key", keyFile)
	t.Setenv("SSL_CERT_FILE", caFile)
	t.Setenv("SSL_CERT_DIR", dir)
	pc := startPhxClient(t, "wss://"+s.addr+"/socket")
	t.Cleanup(pc.stop) // before the server stops: cleanups run last first
	pc.await("the socket to open over wss", phxEvent{Kind: "open"})
	pc.do(`{"cmd":"join","topic":"rooms:lobby","on":["new:msg"]}`)
	pc.await("the join reply", phxEvent{Kind: "joined", Topic: "rooms:lobby", Payload: map[string]any{}})
	pc.do(`{"cmd":"push","topic":"rooms:lobby","event":"new:msg","payload":{"uid":"gopher","body":"over tls"}}`)
	pc.await("the push's broadcast", phxEvent{Kind: "message", Topic: "rooms:lobby", Event: "new:msg",
		Payload: map[string]any{"uid": "gopher", "body": "over tls", "is_editable": false}})
}

// TestTLSStartErrors: a missing, unreadable or mismatched pair stops the start with one
// line and exit status 2.
func TestTLSStartErrors(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	c1, k1 := ca.leaf(t, 301)
	_, k2 := ca.leaf(t, 302)
	files := map[string][]byte{"cert.pem": c1, "key.pem": k1, "other-key.pem": k2, "junk.pem": []byte("not a certificate\n")}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	scripts := examplesPlus(t, nil)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing cert", []string{"-tls-cert", p("none.pem"), "-tls-key", p("key.pem")}, "none.pem"},
		{"missing key", []string{"-tls-cert", p("cert.pem"), "-tls-key", p("none.pem")}, "none.pem"},
		{"junk cert", []string{"-tls-cert", p("junk.pem"), "-tls-key", p("key.pem")}, "junk.pem"},
		{"key of another cert", []string{"-tls-cert", p("cert.pem"), "-tls-key", p("other-key.pem")}, "private key does not match"},
		{"cert without key", []string{"-tls-cert", p("cert.pem")}, "-tls-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, append([]string{"-addr", "127.0.0.1:0", "-scripts", scripts}, tc.args...)...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(startTimeout):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("luachan %v still running after %v; output:\n%s", tc.args, startTimeout, &out)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; output:\n%s", err, &out)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) || !strings.HasPrefix(lines[0], "luachan: ") {
				t.Fatalf("output %q: want one line starting \"luachan: \" and naming %q", out.String(), tc.want)
			}
		})
	}
}
