package main

import (
	"crypto/tls"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in -tls-cert and -tls-key, and loads them again
// when either file's modification time or size changes: a renewed certificate reaches
// new connections without a restart. A pair that does not load keeps the one before and
// is logged, once per change.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu   sync.Mutex // guards cert and seen
	cert *tls.Certificate
	seen [2]fileStamp // of certFile and keyFile when last loaded or tried
}

// fileStamp is what tells a file was changed.
type fileStamp struct {
	mod  time.Time
	size int64
}

// newCertReloader loads the pair once; an error stops the start.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamps, err := r.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert, r.seen = &cert, stamps
	return r, nil
}

func (r *certReloader) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, name := range []string{r.certFile, r.keyFile} {
		info, err := os.Stat(name)
		if err != nil {
			return s, err
		}
		s[i] = fileStamp{info.ModTime(), info.Size()}
	}
	return s, nil
}

// getCertificate is tls.Config.GetCertificate: the current pair, reloaded first if its
// files changed. Two stats per handshake are cheap beside the handshake.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stamps()
	if err != nil || stamps == r.seen {
		if err != nil && r.seen != ([2]fileStamp{}) {
			r.log.Warn("TLS certificate files unreadable: keeping the loaded certificate", "cert", r.certFile, "key", r.keyFile, "err", err)
			r.seen = [2]fileStamp{} // logged once until the files are back
		}
		return r.cert, nil
	}
	r.seen = stamps
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("TLS certificate not reloaded: keeping the loaded certificate", "cert", r.certFile, "key", r.keyFile, "err", err)
		return r.cert, nil
	}
	r.cert = &cert
	r.log.Info("TLS certificate reloaded", "cert", r.certFile)
	return r.cert, nil
}

// tlsConfig returns the server's TLS configuration for -tls-cert and -tls-key, nil
// without them. HTTP/1.1 only: WebSocket upgrades need it.
func tlsConfig(cfg Config, log *slog.Logger) (*tls.Config, error) {
	if cfg.TLSCert == "" && cfg.TLSKey == "" {
		return nil, nil
	}
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, usagef("luachan: -tls-cert and -tls-key go together: pass both")
	}
	r, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, log)
	if err != nil {
		return nil, usagef("luachan: -tls-cert %q, -tls-key %q: %v", cfg.TLSCert, cfg.TLSKey, err)
	}
	return &tls.Config{
		GetCertificate: r.getCertificate,
		NextProtos:     []string{"http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}, nil
}
