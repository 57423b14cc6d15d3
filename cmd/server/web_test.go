package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/internal/testpki"
)

const webTestKey = "web-test-key"

// startWebServer runs the server with the web port on a free address and
// waits until its gRPC port serves (over TLS when pool is set).
func startWebServer(t *testing.T, args ...string) (*serverProcess, string) {
	t.Helper()
	return startWebServerTLS(t, nil, args...)
}

func startWebServerTLS(t *testing.T, pool *x509.CertPool, args ...string) (*serverProcess, string) {
	t.Helper()
	p := startServer(t, append([]string{"-dev", "-api-keys", webTestKey, "-web-addr", "127.0.0.1:0", "-web-origins", "https://app.example"}, args...)...)
	cc := dial(t, p.grpcAddr)
	if pool != nil {
		cc = dialTLS(t, p.grpcAddr, pool, nil)
	}
	waitServing(t, p, healthpb.NewHealthClient(cc))
	return p, p.webAddr
}

// connectUnary calls a method with the Connect protocol (JSON) and returns
// the status code and the decoded body.
func connectUnary(t *testing.T, c *http.Client, base, method, auth string, req any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/viewersession.v1.ViewerSessionService/"+method, bytes.NewReader(b))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Connect-Protocol-Version", "1")
	if auth != "" {
		hr.Header.Set("Authorization", "Bearer "+auth)
	}
	res, err := c.Do(hr)
	if err != nil {
		t.Fatalf("%s over Connect: %v", method, err)
	}
	defer res.Body.Close()
	var out map[string]any
	body, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%s over Connect: %d %q is not JSON", method, res.StatusCode, body)
	}
	return res.StatusCode, out
}

func TestWebPortConnectAndGRPCWeb(t *testing.T) {
	_, web := startWebServer(t)
	base := "http://" + web

	// Connect JSON over HTTP/1.1.
	code, out := connectUnary(t, http.DefaultClient, base, "CreateSession", webTestKey,
		map[string]any{"channel": map[string]any{"name": "demo-camera"}, "viewerId": "browser"})
	sess, _ := out["session"].(map[string]any)
	if code != http.StatusOK || !strings.HasPrefix(fmt.Sprint(sess["name"]), "sessions/") || out["sessionToken"] == "" {
		t.Fatalf("CreateSession over Connect = %d %v, want 200 with a session and its token", code, out)
	}

	// An error keeps its code and ErrorInfo reason.
	code, out = connectUnary(t, http.DefaultClient, base, "GetSession", "wrong-key", map[string]any{"name": sess["name"]})
	if code != http.StatusUnauthorized || out["code"] != "unauthenticated" {
		t.Errorf("GetSession with a wrong key over Connect = %d %v, want 401 unauthenticated", code, out)
	}

	// Connect over h2c (HTTP/2 without TLS).
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
	hr, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/grpc.health.v1.Health/Check", strings.NewReader("{}"))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Connect-Protocol-Version", "1")
	res, err := h2c.Do(hr)
	if err != nil {
		t.Fatalf("health over h2c: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != 200 || !strings.Contains(string(body), "SERVING") {
		t.Errorf("health over h2c = HTTP/%d %d %q, want HTTP/2 200 SERVING", res.ProtoMajor, res.StatusCode, body)
	}

	// gRPC-Web (binary) over HTTP/1.1: one framed message in, a message
	// frame and a trailer frame out.
	msg, _ := proto.Marshal(&healthpb.HealthCheckRequest{})
	frame := append([]byte{0, 0, 0, 0, 0}, msg...)
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(msg)))
	hr, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/grpc.health.v1.Health/Check", bytes.NewReader(frame))
	hr.Header.Set("Content-Type", "application/grpc-web+proto")
	hr.Header.Set("X-Grpc-Web", "1")
	res, err = http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("health over gRPC-Web: %v", err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	frames := splitFrames(t, body)
	if len(frames) != 2 || frames[0].flags != 0 || frames[1].flags&0x80 == 0 {
		t.Fatalf("gRPC-Web frames = %+v, want a message and a trailer", frames)
	}
	var hc healthpb.HealthCheckResponse
	if err := proto.Unmarshal(frames[0].data, &hc); err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC-Web health = %v, %v; want SERVING", &hc, err)
	}
	if !strings.Contains(strings.ToLower(string(frames[1].data)), "grpc-status: 0") {
		t.Errorf("gRPC-Web trailer = %q, want grpc-status: 0", frames[1].data)
	}
}

type frame struct {
	flags byte
	data  []byte
}

// splitFrames splits an enveloped body (gRPC-Web, Connect streaming).
func splitFrames(t *testing.T, b []byte) []frame {
	t.Helper()
	var out []frame
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("truncated frame header: %q", b)
		}
		n := binary.BigEndian.Uint32(b[1:5])
		if uint32(len(b)-5) < n {
			t.Fatalf("truncated frame: want %d bytes, have %d", n, len(b)-5)
		}
		out = append(out, frame{flags: b[0], data: b[5 : 5+n]})
		b = b[5+n:]
	}
	return out
}

// TestWebPortCORS: an allowed origin's preflight with Authorization is
// allowed; another origin gets no allow header.
func TestWebPortCORS(t *testing.T) {
	_, web := startWebServer(t)
	preflight := func(origin string) *http.Response {
		hr, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, "http://"+web+"/viewersession.v1.ViewerSessionService/WatchSession", nil)
		hr.Header.Set("Origin", origin)
		hr.Header.Set("Access-Control-Request-Method", "POST")
		hr.Header.Set("Access-Control-Request-Headers", "authorization,content-type,connect-protocol-version")
		res, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := preflight("https://app.example")
	allow := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(allow, "authorization") || !strings.Contains(allow, "connect-protocol-version") {
		t.Errorf("allowed preflight = %d %v, want 204 allowing the origin and Authorization", res.StatusCode, res.Header)
	}
	res = preflight("https://evil.example")
	if res.StatusCode == http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("disallowed preflight = %d %v, want a refusal without Access-Control-Allow-Origin", res.StatusCode, res.Header)
	}

	// A simple request from a disallowed origin: served, but without the
	// header the browser needs to hand it to the page.
	hr, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+web+"/grpc.health.v1.Health/Check", strings.NewReader("{}"))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Origin", "https://evil.example")
	r2, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a disallowed origin's response carries Access-Control-Allow-Origin %q", r2.Header.Get("Access-Control-Allow-Origin"))
	}
}

// TestWebPortDrainDeliversGoingAway is obstacle 2 of the browser issue: an
// app's watch over the web port sees GOING_AWAY and ends cleanly on SIGTERM
// (on Redis, where another replica can take the session over).
func TestWebPortDrainDeliversGoingAway(t *testing.T) {
	rs := redistest.Start(t)
	p, web := startWebServer(t, "-drain-timeout", "5s", "-redis-url", rs.URL())
	base := "http://" + web
	_, out := connectUnary(t, http.DefaultClient, base, "CreateSession", webTestKey,
		map[string]any{"channel": map[string]any{"name": "demo-camera"}, "viewerId": "drain"})
	name := out["session"].(map[string]any)["name"].(string)
	token := out["sessionToken"].(string)

	// WatchSession with the session token over Connect streaming (JSON).
	req, _ := json.Marshal(map[string]any{"name": name})
	env := append([]byte{0, 0, 0, 0, 0}, req...)
	binary.BigEndian.PutUint32(env[1:5], uint32(len(req)))
	hr, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/viewersession.v1.ViewerSessionService/WatchSession", bytes.NewReader(env))
	hr.Header.Set("Content-Type", "application/connect+json")
	hr.Header.Set("Connect-Protocol-Version", "1")
	hr.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	next := func() (byte, map[string]any) {
		var hdr [5]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("watch stream ended without an end-stream message: %v", err)
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return hdr[0], m
	}
	if _, m := next(); m["event"].(map[string]any)["type"] != "EVENT_TYPE_CREATED" {
		t.Fatalf("first event = %v, want CREATED", m)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sawGoingAway := false
	for {
		flags, m := next()
		if flags&0x02 != 0 { // end of stream
			if m["error"] != nil {
				t.Errorf("watch ended with %v, want OK after GOING_AWAY", m["error"])
			}
			break
		}
		if ev, _ := m["event"].(map[string]any); ev["type"] == "EVENT_TYPE_GOING_AWAY" {
			sawGoingAway = true
		}
	}
	if !sawGoingAway {
		t.Error("the browser's watch ended without GOING_AWAY")
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
	if p.err != nil {
		t.Errorf("server exit = %v, want 0", p.err)
	}
}

// TestWebPortTLS: HTTP/2 over TLS with -web-tls.
func TestWebPortTLS(t *testing.T) {
	pki := testpki.New(t)
	certFile, keyFile := pki.Dir+"/tls.crt", pki.Dir+"/tls.key"
	pki.Issue(t, 7, true, certFile, keyFile)
	_, web := startWebServerTLS(t, pki.Pool, "-tls-cert", certFile, "-tls-key", keyFile, "-web-tls")
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}, ForceAttemptHTTP2: true}}
	_, port, _ := net.SplitHostPort(web)
	hr, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://127.0.0.1:"+port+"/grpc.health.v1.Health/Check", strings.NewReader("{}"))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Connect-Protocol-Version", "1")
	res, err := c.Do(hr)
	if err != nil {
		t.Fatalf("health over TLS: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != 200 || !strings.Contains(string(body), "SERVING") {
		t.Errorf("health over TLS = HTTP/%d %d %q, want HTTP/2 200 SERVING", res.ProtoMajor, res.StatusCode, body)
	}
}

// TestDevWebServesDemoPage: -dev's web port serves the demo viewer page at
// / and mints sessions for it at /dev/session.
func TestDevWebServesDemoPage(t *testing.T) {
	_, web := startWebServer(t)
	res, err := http.Get("http://" + web + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(strings.ToLower(string(body)), "<html") || !strings.Contains(string(body), "demo.js") {
		t.Fatalf("GET / = %d %.200q, want the demo page", res.StatusCode, body)
	}
	res, err = http.Post("http://"+web+"/dev/session", "application/json", strings.NewReader(`{"channel":"demo-camera","viewer_id":"page"}`))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Name, Token string
		IceServers  []struct{ URLs []string } `json:"ice_servers"`
	}
	err = json.NewDecoder(res.Body).Decode(&out)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || !strings.HasPrefix(out.Name, "sessions/") || out.Token == "" || len(out.IceServers) == 0 {
		t.Errorf("POST /dev/session = %d %+v, %v; want a session, its token and ICE servers", res.StatusCode, out, err)
	}
}
