package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate of -tls-cert/-tls-key and picks up a
// new pair when either file changes (cert-manager renews a mounted Secret by
// replacing its files). Handshakes check the files' modification times at
// most once per checkEvery; a pair that fails to load keeps the previous one
// in service and is logged once per change. Connections already established
// are not touched: rotation never drops a stream. Safe for concurrent use.
type certReloader struct {
	certFile, keyFile string
	checkEvery        time.Duration
	log               *slog.Logger
	now               func() time.Time

	// mu guards everything below.
	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	checked   time.Time
	lastError string
}

// newCertReloader loads the pair once; a missing or invalid pair at startup
// is a configuration error.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, checkEvery: time.Second, log: log, now: time.Now}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func modTime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// load reads the pair and, when it parses, makes it current.
func (r *certReloader) load() error {
	cm, err := modTime(r.certFile)
	if err != nil {
		return fmt.Errorf("-tls-cert: %w", err)
	}
	km, err := modTime(r.keyFile)
	if err != nil {
		return fmt.Errorf("-tls-key: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	r.mu.Lock()
	r.cert, r.certMod, r.keyMod = &pair, cm, km
	r.lastError = ""
	r.mu.Unlock()
	return nil
}

// certificate returns the current pair, reloading it first when the files
// changed since the last check.
func (r *certReloader) certificate() *tls.Certificate {
	now := r.now()
	r.mu.Lock()
	due := now.Sub(r.checked) >= r.checkEvery
	if due {
		r.checked = now
	}
	certMod, keyMod := r.certMod, r.keyMod
	r.mu.Unlock()
	if due {
		cm, err1 := modTime(r.certFile)
		km, err2 := modTime(r.keyFile)
		if err := errors.Join(err1, err2); err == nil && (!cm.Equal(certMod) || !km.Equal(keyMod)) {
			if err := r.load(); err != nil {
				r.mu.Lock()
				if r.lastError != err.Error() {
					r.lastError = err.Error()
					r.log.Error("TLS certificate changed but cannot be loaded; serving the previous one", "error", err)
				}
				r.mu.Unlock()
			} else {
				r.log.Info("TLS certificate reloaded", "cert_file", r.certFile)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert
}

// serverTLS builds the TLS configuration of the gRPC port (and of the HTTP
// port with -http-tls). With -tls-client-ca, clients must present a
// certificate signed by one of its CAs (mTLS).
func serverTLS(cfg Config, log *slog.Logger) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	r, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, log)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.certificate(), nil
		},
	}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("-tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-client-ca %s: no PEM certificates", cfg.TLSClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
