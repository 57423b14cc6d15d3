package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/acme/viewersession/internal/stacktest"
	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
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
// created sessions, and checks that none of their secrets was printed. It
// returns the human output and, with -json, the JSON lines.
func runWatch(t *testing.T, cfg watchConfig) (string, string, error) {
	return runWatchTo(t, cfg, &syncBuffer{})
}

// runWatchTo is runWatch with the human output going to out as well.
func runWatchTo(t *testing.T, cfg watchConfig, out io.Writer) (string, string, error) {
	t.Helper()
	conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var human, js syncBuffer
	var jl *jsonLines
	if cfg.JSON {
		jl = newJSONLines(&js)
	}
	w := newWatcher(cfg, conn, io.MultiWriter(&human, out), jl)
	defer w.dev.hc.CloseIdleConnections()
	rec := &recordingAPI{ViewerSessionServiceClient: w.api}
	w.api = rec
	err = w.run(t.Context())
	t.Logf("viewerctl watch output:\n%s", human.String())
	if cfg.JSON {
		t.Logf("viewerctl watch -json lines (tail):\n%s", tailLines(js.String(), 15))
	}
	checkNoSecrets(t, human.String()+js.String(), rec)
	return human.String(), js.String(), err
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
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
		mode viewerclient.Mode
	}{
		{"connect", viewerclient.ModeConnect},
		{"signal", viewerclient.ModeSignal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t)
			cfg := s.config()
			cfg.Duration, cfg.Mode = 3*time.Second, tt.mode
			out, _, err := runWatch(t, cfg)
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
	out, _, err := runWatch(t, cfg)
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
	cfg.Duration, cfg.NetworkChangeAfter, cfg.ICERestartTimeout, cfg.JSON = 6*time.Second, 1500*time.Millisecond, time.Second, true
	out, js, err := runWatch(t, cfg)
	if err != nil {
		t.Fatalf("watch error: %v", err)
	}
	lines := parseJSONLines(t, js)
	var sawNetwork, sawRedial, sawRecovered bool
	for _, l := range lines {
		switch {
		case l["kind"] == "network" && strings.Contains(l["description"].(string), "127.0.0.3"):
			sawNetwork = true
		case l["kind"] == "redial" && l["reason"] == "network change":
			sawRedial = true
		case l["kind"] == "event" && l["type"] == "RECOVERED":
			_, hasOutage := l["outage_ms"]
			_, hasLearned := l["learned"]
			sawRecovered = l["step"] != nil && hasOutage && hasLearned
		}
	}
	if !sawNetwork || !sawRedial || !sawRecovered {
		t.Errorf("JSON lines: network %v, redial (network change) %v, RECOVERED with step, outage_ms and learned %v; want all",
			sawNetwork, sawRedial, sawRecovered)
	}
	sum := lines[len(lines)-1]
	if outages, _ := sum["outages"].([]any); sum["kind"] != "summary" || sum["ok"] != true || len(outages) != 1 || sum["false_recoveries"] != 0.0 {
		t.Errorf("last line %v; want a summary, ok, with 1 outage and no false recovery", sum)
	}
	before, after, ok := strings.Cut(out, "network          the client moved from 127.0.0.2 to 127.0.0.3")
	if !ok {
		t.Fatalf("output lacks the network change")
	}
	if !strings.Contains(before, "via 127.0.0.2:") {
		t.Errorf("no media via 127.0.0.2 before the change")
	}
	for _, want := range []string{"NETWORK_CHANGED:", "RECOVERED: video flows again", "via 127.0.0.3:", "recovered 1 time(s)"} {
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
	w := newWatcher(cfg, conn, &bytes.Buffer{}, nil)
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

// parseJSONLines parses -json's output: every line one JSON object with a
// "time" in RFC 3339 with nanoseconds and a "kind".
func parseJSONLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for i, text := range strings.Split(strings.TrimSpace(out), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(text), &l); err != nil {
			t.Fatalf("line %d is not JSON: %q", i+1, text)
		}
		ts, _ := l["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !regexp.MustCompile(`\.\d{9}`).MatchString(ts) {
			t.Errorf("line %d: time %q, want RFC 3339 with nanoseconds", i+1, ts)
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		t.Fatal("no JSON lines")
	}
	return lines
}

// keys returns a line's keys, sorted.
func keys(l map[string]any) []string {
	var ks []string
	for k := range l {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// -json: stdout has JSON lines only, with exactly the documented fields;
// media every 100 ms; the summary last.
func TestWatchJSON(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	cfg := s.config()
	cfg.Duration, cfg.JSON = 3*time.Second, true
	human, js, err := runWatch(t, cfg)
	if err != nil {
		t.Fatalf("watch error: %v", err)
	}
	if !strings.Contains(human, "ok: CONNECTED on attempt 1") {
		t.Errorf("the human output lacks the ok line")
	}
	lines := parseJSONLines(t, js)
	wantKeys := map[string][]string{
		"media":   {"bytes", "frames", "kind", "packets", "pc", "time"},
		"event":   {"client_id", "kind", "message", "sequence", "state", "time", "type"},
		"summary": {"black_ms", "error", "false_recoveries", "first_video_ms", "gaps_ms", "kind", "ok", "outages", "packets", "time"},
	}
	count := map[string]int{}
	var media []map[string]any
	for i, l := range lines {
		kind, _ := l["kind"].(string)
		count[kind]++
		if want, ok := wantKeys[kind]; !ok || !slices.Equal(keys(l), want) {
			t.Errorf("line %d (%s) has keys %v, want %v", i+1, kind, keys(l), want)
		}
		if kind == "media" {
			media = append(media, l)
		}
	}
	// 3 s at 100 ms; the ticker may drop a tick on a busy machine.
	if count["media"] < 20 || count["event"] < 5 || count["summary"] != 1 {
		t.Errorf("lines by kind %v; want about 30 media, the events, 1 summary", count)
	}
	last := media[len(media)-1]
	if last["pc"] != 1.0 || last["packets"].(float64) <= 0 || last["bytes"].(float64) <= 0 || last["frames"].(float64) <= 0 {
		t.Errorf("last media line %v; want peer connection 1 with packets, bytes and frames", last)
	}
	sum := lines[len(lines)-1]
	if sum["kind"] != "summary" || sum["ok"] != true || sum["error"] != "" || sum["first_video_ms"].(float64) < 0 ||
		sum["false_recoveries"] != 0.0 || sum["packets"].(float64) <= 0 {
		t.Errorf("summary %v; want the last line, ok, with first video and packets", sum)
	}
	var types []string
	for _, l := range lines {
		if l["kind"] == "event" {
			types = append(types, l["type"].(string))
		}
	}
	for _, want := range []string{"CREATED", "OFFER_SENT", "ANSWER", "MEDIA_FLOWING", "CLOSED"} {
		if !slices.Contains(types, want) {
			t.Errorf("event types %v lack %s", types, want)
		}
	}
}

// tripwire records what is written and closes a channel once its pattern has been
// written.
type tripwire struct {
	pattern string
	seen    chan struct{}
	mu      sync.Mutex
	buf     strings.Builder
	done    bool
}

func (s *tripwire) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if !s.done && strings.Contains(s.buf.String(), s.pattern) {
		s.done = true
		close(s.seen)
	}
	return len(p), nil
}

// Video that stops and never comes back fails the watch, saying why: not
// flowing at the end, and an outage that never recovered.
func TestWatchFailsWhenVideoStops(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	cfg := s.config()
	cfg.Duration, cfg.JSON = 9*time.Second, true
	flowing := &tripwire{pattern: "MEDIA_FLOWING", seen: make(chan struct{})}
	stopped := make(chan error, 1)
	go func() {
		select {
		case <-flowing.seen:
			stopped <- s.emu.StopCamera(s.arn)
		case <-t.Context().Done():
			stopped <- t.Context().Err()
		}
	}()
	_, js, err := runWatchTo(t, cfg, flowing)
	if serr := <-stopped; serr != nil {
		t.Fatalf("stopping the camera: %v", serr)
	}
	if !errors.Is(err, errNotFlowing) || !errors.Is(err, errUnrecovered) {
		t.Fatalf("watch error = %v; want %v and %v", err, errNotFlowing, errUnrecovered)
	}
	if code := exitCode(err, io.Discard); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	lines := parseJSONLines(t, js)
	sum := lines[len(lines)-1]
	if sum["kind"] != "summary" || sum["ok"] != false || !strings.Contains(sum["error"].(string), "video is not flowing at the end") ||
		sum["black_ms"].(float64) < 3000 {
		t.Errorf("summary %v; want not ok, saying video is not flowing, with over 3s of black", sum)
	}
}
