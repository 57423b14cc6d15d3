package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/acme/viewersession/internal/testpki"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

func dialTLS(t *testing.T, addr string, pool *x509.CertPool, client *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if client != nil {
		tc.Certificates = []tls.Certificate{*client}
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// servedSerial is the serial of the certificate the server presents to a
// new connection.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool, client *tls.Certificate) (int64, error) {
	t.Helper()
	cc := dialTLS(t, addr, pool, client)
	defer cc.Close()
	var pr peer.Peer
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&pr)); err != nil {
		return 0, err
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		t.Fatalf("peer auth info = %T, want TLS with a certificate", pr.AuthInfo)
	}
	return info.State.PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestServerTLSRotationKeepsWatch is the hardening issue's TLS acceptance:
// a WatchSession over TLS (mTLS) survives a certificate rotation, new
// connections get the new certificate, and a client without a certificate
// is refused.
func TestServerTLSRotationKeepsWatch(t *testing.T) {
	pki := testpki.New(t)
	certFile, keyFile := filepath.Join(pki.Dir, "tls.crt"), filepath.Join(pki.Dir, "tls.key")
	pki.Issue(t, 100, true, certFile, keyFile)
	client := pki.Issue(t, 200, false, filepath.Join(pki.Dir, "client.crt"), filepath.Join(pki.Dir, "client.key"))
	const key = "tls-test-api-key"
	p := startServer(t, "-dev", "-api-keys", key, "-tls-cert", certFile, "-tls-key", keyFile, "-tls-client-ca", pki.File)

	cc := dialTLS(t, p.grpcAddr, pki.Pool, &client)
	waitServing(t, p, healthpb.NewHealthClient(cc))

	// Without a client certificate the handshake is refused.
	if _, err := servedSerial(t, p.grpcAddr, pki.Pool, nil); err == nil {
		t.Fatal("a client without a certificate was served under mTLS")
	} else {
		t.Logf("no client certificate: %v", err)
	}

	// A backend watch on a live session, over the first certificate.
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+key)
	vc := vspb.NewViewerSessionServiceClient(cc)
	created, err := vc.CreateSession(ctx, &vspb.CreateSessionRequest{Channel: &vspb.Channel{Name: "demo-camera"}, ViewerId: "tls"})
	if err != nil {
		t.Fatalf("CreateSession over mTLS: %v", err)
	}
	name := created.GetSession().GetName()
	w, err := vc.WatchSession(ctx, &vspb.WatchSessionRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := w.Recv(); err != nil || ev.GetEvent().GetType() != vspb.EventType_EVENT_TYPE_CREATED {
		t.Fatalf("first watch event = %v, %v; want CREATED", ev, err)
	}

	// Rotate: a new certificate (serial 101) under the same names.
	pki.Issue(t, 101, true, certFile, keyFile)
	deadline := time.Now().Add(15 * time.Second)
	for {
		serial, err := servedSerial(t, p.grpcAddr, pki.Pool, &client)
		if err == nil && serial == 101 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new connections still get serial %d (err %v) 15 s after the rotation", serial, err)
		}
		select { // the server is another process: poll with a deadline
		case <-p.exited:
			t.Fatalf("server exited: %v\n%s", p.err, p.log())
		case <-time.After(200 * time.Millisecond):
		}
	}

	// The watch opened before the rotation still delivers: closing the
	// session reaches it.
	if _, err := vc.CloseSession(ctx, &vspb.CloseSessionRequest{Name: name}); err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	for {
		ev, err := w.Recv()
		if err != nil {
			t.Fatalf("the watch opened before the rotation ended with %v before CLOSED", err)
		}
		if ev.GetEvent().GetType() == vspb.EventType_EVENT_TYPE_CLOSED {
			break
		}
	}
	if !strings.Contains(p.log(), "TLS certificate reloaded") {
		t.Errorf("server log lacks the reload line:\n%s", p.log())
	}
}

// TestHTTPIdleConnectionsClosed is defect 3 of the hardening issue: the
// HTTP port kept idle keep-alive connections forever.
func TestHTTPIdleConnectionsClosed(t *testing.T) {
	const idle = 300 * time.Millisecond
	p := startServer(t, "-http-idle-timeout", idle.String())
	waitServing(t, p, healthpb.NewHealthClient(dial(t, p.grpcAddr)))
	conn, err := net.Dial("tcp", p.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, "200") {
		t.Fatalf("GET /healthz = %q, %v", status, err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := br.ReadByte(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("an idle keep-alive connection is still open after 10 s (idle timeout %v)", idle)
			}
			break // closed by the server
		}
	}
	if d := time.Since(start); d < idle/2 {
		t.Errorf("connection closed after %v, before the idle timeout %v", d, idle)
	}
}

// TestMaxConcurrentStreams is part of defect 2: one connection may not open
// unbounded streams.
func TestMaxConcurrentStreams(t *testing.T) {
	p := startServer(t, "-max-concurrent-streams", "2")
	cc := dial(t, p.grpcAddr)
	hc := healthpb.NewHealthClient(cc)
	waitServing(t, p, hc)
	for i := range 2 {
		w, err := hc.Watch(t.Context(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Recv(); err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if err == nil {
		t.Fatal("a third stream on a connection limited to 2 was served")
	}
}
