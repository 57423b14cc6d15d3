package main

import (
	"bytes"
	"context"
	"github.com/acme/viewersession/internal/stacktest"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/acme/viewersession/internal/thinclient"
	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

const testAPIKey = stacktest.APIKey

// stack is what `go run ./cmd/server -dev` serves, in process: the KVS
// emulator with a simulated camera on channel demo-camera, the service on a
// loopback gRPC port, and the /dev/emulator/ proxy on an HTTP port.
type stack struct {
	emu      *kvsemu.Emulator
	arn      string
	grpcAddr string
	devHTTP  string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	st := stacktest.Start(t, stacktest.Options{ChannelName: "demo-camera"})
	emu := st.Emu

	// The dev proxy, as cmd/server -dev serves it.
	target, err := url.Parse(emu.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	tr := emu.HTTPClient().Transport
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = target.Scheme, target.Host
			r.Out.URL.Path = target.Path + strings.TrimPrefix(r.In.URL.Path, "/dev/emulator")
			r.Out.Host = target.Host
		},
		Transport: tr,
	}
	mux := http.NewServeMux()
	mux.Handle("/dev/emulator/", proxy)
	hs := httptest.NewServer(mux)

	t.Cleanup(func() {
		hs.Close()
		tr.(*http.Transport).CloseIdleConnections()
	})
	return &stack{emu: emu, arn: st.ARN, grpcAddr: st.GRPCAddr, devHTTP: hs.URL}
}

func (s *stack) config() watchConfig {
	return watchConfig{
		commonConfig: commonConfig{Addr: s.grpcAddr, APIKey: testAPIKey, Channel: "demo-camera"},
		ViewerID:     "viewerctl-test",
		Duration:     10 * time.Second,
		DevHTTP:      s.devHTTP,
	}
}

// syncBuffer is an output the test reads while watch writes it.
type syncBuffer = stacktest.SyncBuffer

// recordingAPI remembers what CreateSession returned, so that the test can
// check that no secret of it was printed.
type recordingAPI struct {
	vspb.ViewerSessionServiceClient
	mu      sync.Mutex
	created []*vspb.CreateSessionResponse
}

func (r *recordingAPI) CreateSession(ctx context.Context, in *vspb.CreateSessionRequest, opts ...grpc.CallOption) (*vspb.CreateSessionResponse, error) {
	resp, err := r.ViewerSessionServiceClient.CreateSession(ctx, in, opts...)
	if err == nil {
		r.mu.Lock()
		r.created = append(r.created, resp)
		r.mu.Unlock()
	}
	return resp, err
}

// runWatch runs watch as main does, but with a client that records the
// created sessions, and checks that none of their secrets was printed.
func runWatch(t *testing.T, cfg watchConfig) (string, error) {
	t.Helper()
	conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out syncBuffer
	w := newWatcher(cfg, conn, &out)
	defer w.dev.hc.CloseIdleConnections()
	rec := &recordingAPI{ViewerSessionServiceClient: w.api}
	w.api = rec
	err = w.run(t.Context(), conn)
	t.Logf("viewerctl watch output:\n%s", out.String())
	checkNoSecrets(t, out.String(), rec)
	return out.String(), err
}

func checkNoSecrets(t *testing.T, out string, rec *recordingAPI) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.created) == 0 {
		t.Fatal("no session was created")
	}
	for _, resp := range rec.created {
		secrets := []string{resp.GetSessionToken(), testAPIKey}
		for _, s := range resp.GetSession().GetIceServers() {
			secrets = append(secrets, s.GetUsername(), s.GetCredential())
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(out, s) {
				t.Errorf("the output shows a secret (%d characters)", len(s))
			}
		}
	}
}

var packetsRE = regexp.MustCompile(`media +packets (\d+) `)

// packetCounts are the media lines' packet counts, in order.
func packetCounts(out string) []int {
	var n []int
	for _, m := range packetsRE.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.Atoi(m[1])
		n = append(n, v)
	}
	return n
}

func TestWatchConnects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode thinclient.Mode
	}{
		{"connect", thinclient.ModeConnect},
		{"signal", thinclient.ModeSignal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t)
			cfg := s.config()
			cfg.Duration, cfg.Mode = 3*time.Second, tt.mode
			out, err := runWatch(t, cfg)
			if err != nil {
				t.Fatalf("watch error: %v", err)
			}
			for _, want := range []string{
				tt.name + " mode",
				"OFFER_SENT: offer sent to the camera",
				"CONNECTED        attempt 1",
				"-duration 3s is up: closing the session",
				"[CLOSED_BY_BACKEND]",
				"ok: CONNECTED on attempt 1",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if strings.Contains(out, "REMOTE_CANDIDATE") {
				t.Errorf("output shows REMOTE_CANDIDATE events without -v")
			}
			n := packetCounts(out)
			if len(n) < 2 || n[len(n)-1] <= n[0] || n[0] <= 0 {
				t.Errorf("media packet counts %v; want at least 2 lines, growing from above 0", n)
			}
		})
	}
}

func TestWatchNoAnswerFails(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	cfg := s.config()
	cfg.Fault, cfg.AnswerTimeout, cfg.RetryDelay, cfg.Verbose = "no-answer", time.Second, 500*time.Millisecond, true
	out, err := runWatch(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "session FAILED: ANSWER_TIMEOUT (DeadlineExceeded): the camera did not answer after 2 attempts") {
		t.Fatalf("watch error = %v; want session FAILED: ANSWER_TIMEOUT in plain words", err)
	}
	timeouts := regexp.MustCompile(`attempt (\d)  (\S+) +ANSWER_TIMEOUT:`).FindAllStringSubmatch(out, -1)
	if len(timeouts) != 2 || timeouts[0][1] != "1" || timeouts[1][1] != "2" || timeouts[0][2] == timeouts[1][2] {
		t.Errorf("ANSWER_TIMEOUT lines %q; want attempt 1 and attempt 2 with different clientIds", timeouts)
	}
	for _, want := range []string{"fault            no-answer:", "RETRY_SCHEDULED:", "FAILED: the camera did not answer", "fault            cleared"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, ch := range s.emu.Channels() {
		if ch.Camera == nil || ch.Camera.Fault != (kvsemu.FaultState{}) {
			t.Errorf("camera fault after watch = %+v; want cleared", ch.Camera)
		}
	}
}

func TestWatchNetworkChangeRecovers(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	cfg := s.config()
	cfg.Duration, cfg.NetworkChangeAfter, cfg.ICERestartTimeout = 6*time.Second, 1500*time.Millisecond, time.Second
	out, err := runWatch(t, cfg)
	if err != nil {
		t.Fatalf("watch error: %v", err)
	}
	before, after, ok := strings.Cut(out, "network          the client moved from 127.0.0.2 to 127.0.0.3")
	if !ok {
		t.Fatalf("output lacks the network change")
	}
	if !strings.Contains(before, "via 127.0.0.2:") {
		t.Errorf("no media via 127.0.0.2 before the change")
	}
	for _, want := range []string{"NETWORK_CHANGED:", "RECOVERED: recovered by", "via 127.0.0.3:", "recovered 1 time(s)"} {
		if !strings.Contains(after, want) {
			t.Errorf("output after the change lacks %q", want)
		}
	}
	nb, na := packetCounts(before), packetCounts(after)
	if len(nb) == 0 || len(na) == 0 || na[len(na)-1] <= nb[len(nb)-1] {
		t.Errorf("packet counts before %v, after %v; want growth after the change", nb, na)
	}
}

func TestSessionsListsWatchers(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := s.config()
	w := newWatcher(cfg, conn, &bytes.Buffer{})
	for _, id := range []string{"alice", "bob"} {
		w.cfg.ViewerID = id
		if _, err := w.create(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := sessions(t.Context(), sessionsConfig{commonConfig: cfg.commonConfig}, &out); err != nil {
		t.Fatalf("sessions error: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("sessions output:\n%s\nwant a header and 2 sessions", out.String())
	}
	for i, want := range []string{"bob", "alice"} { // newest first
		if f := strings.Fields(lines[i+1]); len(f) < 6 || f[1] != want || f[3] != "PENDING" || f[4] != "1" {
			t.Errorf("line %d = %q; want viewer %s, PENDING, attempt 1", i+1, lines[i+1], want)
		}
	}
}
