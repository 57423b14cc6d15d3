package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/acme/viewersession/internal/servinglog"
	"github.com/acme/viewersession/internal/testpki"
)

// testCA is a generated CA and the server certificate files it issues.
type testCA struct {
	*testpki.CA
	certFile, keyFile string
}

// generatedCerts makes a CA and a server certificate it signed, for
// localhost and 127.0.0.1, in PEM files.
func generatedCerts(t *testing.T) *testCA {
	t.Helper()
	ca := testpki.New(t)
	c := &testCA{CA: ca, certFile: filepath.Join(ca.Dir, "cert.pem"), keyFile: filepath.Join(ca.Dir, "key.pem")}
	c.issue(t, 2)
	return c
}

// issue writes a new server certificate and key with serial number
// serial over the certificate files (each replaced at once).
func (c *testCA) issue(t *testing.T, serial int64) {
	t.Helper()
	c.Issue(t, serial, true, c.certFile, c.keyFile)
}

// servedSerial is the serial number of the certificate addr serves now.
func servedSerial(t *testing.T, addr, caFile string) int64 {
	t.Helper()
	pool, err := loadCAs(caFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// devServerTLS builds and starts the real server binary with -dev and the
// certificate on its gRPC port; it returns the gRPC and HTTP addresses.
func devServerTLS(t *testing.T, certFile, keyFile, caFile string) (grpcAddr, httpAddr string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	build := exec.Command("go", "build", "-o", bin, "github.com/acme/viewersession/cmd/server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the server: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	// Port 0, read back from the "serving" line: a port picked before the
	// start can be taken by another test before the server binds it.
	cmd := exec.Command(bin, "-dev", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-web-addr", "",
		"-tls-cert", certFile, "-tls-key", keyFile, "-log-format", "text")
	cmd.Env = append(os.Environ(), "VS_API_KEYS="+testAPIKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("server log:\n%s", logs())
		}
	})
	pool, err := loadCAs(caFile)
	if err != nil {
		t.Fatal(err)
	}
	var conn *grpc.ClientConn
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := errors.New(`no "serving" line in its log`)
		if conn == nil {
			if a, ok := servinglog.Find([]byte(logs())); ok {
				grpcAddr, httpAddr = a.GRPC, a.HTTP
				if conn, err = grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool}))); err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
			}
		}
		if conn != nil {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			var resp *healthpb.HealthCheckResponse
			resp, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			cancel()
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				return grpcAddr, httpAddr
			}
		}
		select {
		case <-exited:
			t.Fatalf("the server exited while starting:\n%s", logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server is not serving over TLS after 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling another process
	}
}

// Issue 15, TLS end to end: viewerctl watches the camera of a real -dev
// server whose gRPC port serves a generated certificate, with -ca (and
// -server-name); a plaintext viewerctl, or one that does not trust the
// CA or expects another name, is refused with a clear error.
func TestWatchOverTLS(t *testing.T) {
	ca := generatedCerts(t)
	caFile := ca.File
	grpcAddr, httpAddr := devServerTLS(t, ca.certFile, ca.keyFile, caFile)
	_, port, _ := net.SplitHostPort(grpcAddr)

	watchTo := func(out io.Writer, extra ...string) error {
		args := append([]string{"watch", "-api-key", testAPIKey, "-channel", "demo-camera", "-viewer-id", "tls-" + strconv.Itoa(len(extra)),
			"-dev-http", "http://" + httpAddr}, extra...)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		return run(ctx, args, out, out)
	}
	watch := func(extra ...string) (string, error) {
		var out bytes.Buffer
		err := watchTo(&out, extra...)
		return out.String(), err
	}

	out, err := watch("-addr", grpcAddr, "-ca", caFile, "-duration", "5s")
	if err != nil {
		t.Fatalf("watch over TLS with -ca = %v\n%s", err, out)
	}
	if !strings.Contains(out, "ok: CONNECTED") {
		t.Errorf("watch over TLS: no \"ok: CONNECTED\" verdict:\n%s", out)
	}
	t.Logf("watch over TLS with -ca: %s", lastLine(out))

	out, err = watch("-addr", "localhost:"+port, "-tls", "-ca", caFile, "-server-name", "localhost", "-duration", "3s")
	if err != nil {
		t.Fatalf("watch over TLS with -server-name localhost = %v\n%s", err, out)
	}

	// The certificate is rotated during a watch: the watch's stream is
	// not dropped, new connections get the new certificate.
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	live := &syncBuffer{}
	go func() {
		err := watchTo(live, "-addr", grpcAddr, "-ca", caFile, "-duration", "8s")
		done <- result{live.String(), err}
	}()
	for !strings.Contains(live.String(), "MEDIA_FLOWING") { // video flows over the first certificate's connection
		select {
		case r := <-done:
			t.Fatalf("the watch ended before video flowed: %v\n%s", r.err, r.out)
		case <-time.After(50 * time.Millisecond): // polling the watch's output
		}
	}
	ca.issue(t, 3)
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial(t, grpcAddr, caFile) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the server still serves the old certificate 10 s after the files changed")
		}
		time.Sleep(100 * time.Millisecond) // polling the server's reload
	}
	r := <-done
	if r.err != nil || strings.Contains(r.out, "is down") {
		t.Errorf("watch across the certificate's rotation = %v, want it unbroken:\n%s", r.err, r.out)
	}
	t.Logf("rotated during a watch: the server serves certificate #3; the watch: %s", lastLine(r.out))

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"plaintext to a TLS port", []string{"-addr", grpcAddr}, "Unavailable"},
		{"TLS without trusting the CA", []string{"-addr", grpcAddr, "-tls"}, "certificate signed by unknown authority"},
		{"another name", []string{"-addr", grpcAddr, "-ca", caFile, "-server-name", "camera.example"}, "camera.example"},
	} {
		out, err := watch(append(tt.args, "-duration", "2s")...)
		if err == nil {
			t.Errorf("%s: watch succeeded, want it refused", tt.name)
			continue
		}
		if !strings.Contains(out+err.Error(), tt.want) {
			t.Errorf("%s: %v, want the output to say %q:\n%s", tt.name, err, tt.want, out)
		}
	}
	if _, err := parseWatch([]string{"-api-key", "k", "-channel", "c", "-ca", filepath.Join(t.TempDir(), "missing.pem")}, func(string) string { return "" }, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "-ca") {
		t.Errorf("parseWatch with a missing -ca file = %v, want an error naming -ca", err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
