package kvs

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/coder/websocket"
)

// fakeKVS is a small KVS on a real TLS loopback server for the tests that
// need faults the emulator does not offer (oversized and junk frames, a peer
// that stops answering pings) or must run without it. The emulator
// integration tests (emu_test.go) check the real protocol.
type fakeKVS struct {
	t        *testing.T
	srv      *httptest.Server
	wsURL    string
	arn      string
	sockets  chan *fakeSocket
	quit     chan struct{} // closed at cleanup
	handlers sync.WaitGroup

	// mu guards the fields below.
	mu         sync.Mutex
	calls      map[string]int
	throttle   map[string]int // op -> answers still to throttle
	refuseWSS  int            // upgrades still to refuse
	refuseWith int            // HTTP status of a refused upgrade (400 = ClientLimitExceeded)
	iceTTL     int
	iceGen     int
	mute       bool // new sockets do not read (so never answer pings)
	open       []*websocket.Conn
}

// fakeSocket is one viewer socket as the fake sees it.
type fakeSocket struct {
	ws       *websocket.Conn
	query    url.Values
	frames   chan []byte // text frames the viewer sent
	closed   chan struct{}
	closeErr error // why reading ended, set before closed is closed
}

func newFakeKVS(t *testing.T) *fakeKVS {
	t.Helper()
	f := &fakeKVS{
		t:          t,
		arn:        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/front-door/1700000000000",
		sockets:    make(chan *fakeSocket, 16),
		quit:       make(chan struct{}),
		calls:      make(map[string]int),
		throttle:   make(map[string]int),
		refuseWith: http.StatusBadRequest,
		iceTTL:     300,
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serveHTTP))
	f.wsURL = "wss://" + strings.TrimPrefix(f.srv.URL, "https://")
	t.Cleanup(func() {
		close(f.quit)
		f.mu.Lock()
		open := f.open
		f.mu.Unlock()
		for _, ws := range open {
			_ = ws.CloseNow()
		}
		f.srv.Close()
		f.handlers.Wait()
	})
	return f
}

func (f *fakeKVS) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.srv.Certificate())
	return p
}

func (f *fakeKVS) channel() Channel {
	return Channel{ARN: f.arn, Name: "front-door", Region: "us-west-2", MessageTTL: time.Minute, WSSEndpoint: f.wsURL, HTTPSEndpoint: f.srv.URL}
}

func (f *fakeKVS) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeKVS) set(fn func(f *fakeKVS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// testConfig is a Config with short durations for tests.
func testConfig(f *fakeKVS) Config {
	cfg := DefaultConfig()
	cfg.Endpoint = f.srv.URL
	cfg.CAPool = f.pool()
	cfg.Backoff = Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 4}
	cfg.DialTimeout = 2 * time.Second
	return cfg
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	awsCfg := aws.Config{Region: "us-west-2", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret-key", "")}
	c, err := New(awsCfg, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.closeIdleConnections)
	return c
}

func (f *fakeKVS) kvsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code+":http://internal.amazon.com/coral/com.amazonaws.kinesisvideo/")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":%q,"message":%q}`, code, msg)
}

// throttled counts a call to op and reports whether to throttle it.
func (f *fakeKVS) throttled(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if f.throttle[op] > 0 {
		f.throttle[op]--
		return true
	}
	return false
}

func (f *fakeKVS) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		f.serveWSS(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in map[string]any
	_ = json.Unmarshal(body, &in)
	op := map[string]string{
		"/describeSignalingChannel":    "DescribeSignalingChannel",
		"/getSignalingChannelEndpoint": "GetSignalingChannelEndpoint",
		"/v1/get-ice-server-config":    "GetIceServerConfig",
	}[r.URL.Path]
	if op == "" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDTEST/") {
		f.kvsError(w, http.StatusUnauthorized, "AccessDeniedException", "unsigned request")
		return
	}
	if f.throttled(op) {
		f.kvsError(w, http.StatusBadRequest, "ClientLimitExceededException", "slow down")
		return
	}
	arn, _ := in["ChannelARN"].(string)
	name, _ := in["ChannelName"].(string)
	if (arn != "" && arn != f.arn) || (name != "" && name != "front-door") {
		f.kvsError(w, http.StatusNotFound, "ResourceNotFoundException", "no such channel")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch op {
	case "DescribeSignalingChannel":
		fmt.Fprintf(w, `{"ChannelInfo":{"ChannelARN":%q,"ChannelName":"front-door","ChannelStatus":"ACTIVE","ChannelType":"SINGLE_MASTER","CreationTime":1700000000,"SingleMasterConfiguration":{"MessageTtlSeconds":90},"Version":"1"}}`, f.arn)
	case "GetSignalingChannelEndpoint":
		fmt.Fprintf(w, `{"ResourceEndpointList":[{"Protocol":"HTTPS","ResourceEndpoint":%q},{"Protocol":"WSS","ResourceEndpoint":%q}]}`, f.srv.URL, f.wsURL)
	case "GetIceServerConfig":
		f.mu.Lock()
		f.iceGen++
		gen, ttl := f.iceGen, f.iceTTL
		f.mu.Unlock()
		fmt.Fprintf(w, `{"IceServerList":[{"Password":"pw/+%d","Ttl":%d,"Uris":["turn:127.0.0.1:3478?transport=udp","turns:127.0.0.1:443?transport=tcp"],"Username":"%d:user"},{"Password":"pw2","Ttl":%d,"Uris":["turn:127.0.0.2:3478"],"Username":"u2"}]}`, gen, ttl, gen, ttl+100)
	}
}

func (f *fakeKVS) serveWSS(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	f.calls["ConnectAsViewer"]++
	refuse := f.refuseWSS > 0
	if refuse {
		f.refuseWSS--
	}
	status, mute := f.refuseWith, f.mute
	f.mu.Unlock()
	if q.Get("X-Amz-ChannelARN") != f.arn || q.Get("X-Amz-ClientId") == "" || q.Get("X-Amz-Signature") == "" {
		f.kvsError(w, http.StatusForbidden, "AccessDeniedException", "bad presign")
		return
	}
	if refuse {
		switch status {
		case http.StatusBadRequest:
			f.kvsError(w, status, "ClientLimitExceededException", "too many connects")
		case http.StatusNotFound:
			f.kvsError(w, status, "ResourceNotFoundException", "gone")
		default:
			http.Error(w, "unavailable", status)
		}
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(-1)
	f.handlers.Add(1)
	defer f.handlers.Done()
	s := &fakeSocket{ws: ws, query: q, frames: make(chan []byte, 64), closed: make(chan struct{})}
	f.mu.Lock()
	f.open = append(f.open, ws)
	f.mu.Unlock()
	f.sockets <- s
	if mute {
		// Never read, so pings go unanswered; the socket ends at cleanup.
		<-f.quit
		_ = ws.CloseNow()
		close(s.closed)
		return
	}
	for {
		typ, b, err := ws.Read(context.Background())
		if err != nil {
			s.closeErr = err
			close(s.closed)
			return
		}
		if typ == websocket.MessageText {
			s.frames <- b
		}
	}
}

// next waits for the next viewer socket.
func (f *fakeKVS) next(t *testing.T) *fakeSocket {
	t.Helper()
	select {
	case s := <-f.sockets:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no viewer socket within 10s")
		return nil
	}
}

// send writes a text frame to the viewer.
func (s *fakeSocket) send(t *testing.T, frame string) {
	t.Helper()
	if err := s.ws.Write(t.Context(), websocket.MessageText, []byte(frame)); err != nil {
		t.Fatalf("fake send: %v", err)
	}
}

// frame waits for the next frame the viewer sent.
func (s *fakeSocket) frame(t *testing.T) string {
	t.Helper()
	select {
	case b := <-s.frames:
		return string(b)
	case <-time.After(10 * time.Second):
		t.Fatal("no frame from the viewer within 10s")
		return ""
	}
}

// waitClosed waits until the viewer side closed the socket.
func (s *fakeSocket) waitClosed(t *testing.T) error {
	t.Helper()
	select {
	case <-s.closed:
		return s.closeErr
	case <-time.After(10 * time.Second):
		t.Fatal("socket not closed within 10s")
		return nil
	}
}

// nextEvent waits for the next event of cn.
func nextEvent(t *testing.T, cn *Conn) Event {
	t.Helper()
	select {
	case ev, ok := <-cn.Events():
		if !ok {
			t.Fatal("Events closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return Event{}
	}
}
