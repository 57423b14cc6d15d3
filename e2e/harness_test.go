package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking for healthCheckConfig
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/internal/servinglog"
	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// apiKey is the backend API key every replica accepts (VS_API_KEYS).
const apiKey = "e2e-backend-key-0123456789abcdef"

// channelMessageTTL is the test channels' MessageTtlSeconds, the KVS
// minimum. With -client-id-cooldown 5s the clientId cooldown is 5 s.
const channelMessageTTL = 5 * time.Second

// Durations the replicas run with (flags), short so that the tests are.
const (
	answerTimeout    = 3 * time.Second
	drainTimeout     = 8 * time.Second
	clientIDCooldown = 5 * time.Second
	resumeGrace      = 10 * time.Second
)

// cooldown is the clientId cooldown on the test channels:
// max(-client-id-cooldown, MessageTtlSeconds).
const cooldown = max(clientIDCooldown, channelMessageTTL)

// replicaArgs are the session defaults and timeouts every replica gets.
var replicaArgs = []string{
	"-answer-timeout", answerTimeout.String(),
	"-retry-delay", "500ms",
	"-max-attempts", "3",
	"-ice-restart-timeout", "1500ms",
	"-disconnected-grace", "2s",
	"-resume-grace", resumeGrace.String(),
	"-drain-timeout", drainTimeout.String(),
	"-client-id-cooldown", clientIDCooldown.String(),
	"-log-format", "json",
	"-log-level", "info",
}

// cluster is the deployment under test: one redis-server, the KVS emulator
// (in this process) and three server processes, A, B and C, sharing both.
type cluster struct {
	redis    *redistest.Server // private: the outage test pauses it
	emu      *kvsemu.Emulator
	dir      string
	caFile   string
	secret   string
	replicas []*replica
	// extraArgs are flags every replica gets after replicaArgs, and
	// apiKeys its VS_API_KEYS (default apiKey).
	extraArgs []string
	apiKeys   string
}

// newCluster starts redis-server, the emulator and replicas A, B and C,
// and waits until every replica serves.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	return newClusterOf(t, clusterSpec{ids: []string{"A", "B", "C"}})
}

// clusterSpec shapes a cluster: its replicas' ids, flags added to
// replicaArgs, and VS_API_KEYS (default apiKey).
type clusterSpec struct {
	ids       []string
	extraArgs []string
	apiKeys   string
}

// newClusterOf starts redis-server, the emulator and the replicas of spec,
// and waits until every replica serves.
func newClusterOf(t *testing.T, spec clusterSpec) *cluster {
	t.Helper()
	start := time.Now()
	c := &cluster{dir: t.TempDir(), extraArgs: spec.extraArgs, apiKeys: spec.apiKeys}
	if c.apiKeys == "" {
		c.apiKeys = apiKey
	}
	c.redis = redistest.Start(t)

	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	emu, err := kvsemu.Start(t.Context(), ecfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	c.emu = emu
	c.caFile = filepath.Join(c.dir, "kvs-ca.pem")
	if err := os.WriteFile(c.caFile, emu.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	c.secret = filepath.Join(c.dir, "token-secret")
	if err := os.WriteFile(c.secret, []byte(randomHex(32)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range spec.ids {
		c.replicas = append(c.replicas, c.startReplica(t, id))
	}
	for _, r := range c.replicas {
		r.waitServing(t, 60*time.Second)
	}
	t.Logf("cluster up in %v: redis %s, kvs %s, replicas %s", time.Since(start).Round(time.Millisecond),
		c.redis.Addr(), emu.Endpoint(), c.describe())
	return c
}

func (c *cluster) describe() string {
	var parts []string
	for _, r := range c.replicas {
		parts = append(parts, r.id+"="+r.grpcAddr)
	}
	return strings.Join(parts, " ")
}

// channel creates a channel with a simulated camera (c-sample) and returns
// its ARN.
func (c *cluster) channel(t *testing.T, name string) string {
	t.Helper()
	arn, err := c.emu.CreateChannel(name+"-"+randomHex(3), channelMessageTTL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.emu.StartCamera(arn, camera.CSample); err != nil {
		t.Fatal(err)
	}
	return arn
}

// replica is one server process and a gRPC connection to it alone.
type replica struct {
	id       string
	grpcAddr string
	httpAddr string
	logPath  string
	cmd      *exec.Cmd
	conn     *grpc.ClientConn
	api      vspb.ViewerSessionServiceClient

	exited chan struct{} // closed when the process has exited
	// Written before exited is closed.
	exitErr error
	exitAt  time.Time
}

// startReplica starts one server process with replica id id, on port 0:
// waitServing reads the ports it bound from its log. t.Cleanup kills it
// (if it still runs), scans its log for data races and prints the log's
// tail when the test failed.
func (c *cluster) startReplica(t *testing.T, id string) *replica {
	t.Helper()
	r := &replica{
		id:      id,
		logPath: filepath.Join(c.dir, "replica-"+id+".log"),
		exited:  make(chan struct{}),
	}
	logFile, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	creds := c.emu.Credentials()
	args := append([]string{
		"-grpc-addr", "127.0.0.1:0",
		"-http-addr", "127.0.0.1:0",
		"-redis-url", c.redis.URL(),
		"-replica-id", id,
		"-token-secret-file", c.secret,
		"-kvs-endpoint", c.emu.Endpoint(),
		"-kvs-ca-file", c.caFile,
		"-aws-region", c.emu.Region(),
	}, replicaArgs...)
	args = append(args, c.extraArgs...)
	cmd := exec.Command(serverBin, args...)
	cmd.Env = []string{
		"VS_API_KEYS=" + c.apiKeys,
		"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
		"HOME=" + c.dir,
		"GORACE=halt_on_error=0",
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start replica %s: %v", id, err)
	}
	r.cmd = cmd
	go func() {
		r.exitErr = cmd.Wait()
		r.exitAt = time.Now()
		logFile.Close()
		close(r.exited)
	}()
	t.Cleanup(func() {
		if r.conn != nil {
			r.conn.Close()
		}
		r.Kill()
		<-r.exited
		logs, _ := os.ReadFile(r.logPath)
		if bytes.Contains(logs, []byte("WARNING: DATA RACE")) {
			t.Errorf("replica %s: the race detector reported a data race:\n%s", id, raceReport(logs))
		}
		if t.Failed() {
			t.Logf("replica %s log (tail):\n%s", id, tail(string(logs), 4000))
		}
	})
	return r
}

// waitServing reads the replica's addresses from its "serving" log line,
// dials it and polls its gRPC health until it is SERVING (the replica is
// another process: polling with a deadline).
func (r *replica) waitServing(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	exitedOrLate := func(err error) {
		t.Helper()
		select {
		case <-r.exited:
			t.Fatalf("replica %s exited while starting: %v\n%s", r.id, r.exitErr, r.logTail(3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not serving after %v: %v\n%s", r.id, timeout, err, r.logTail(3000))
		}
		time.Sleep(100 * time.Millisecond) // polling another process
	}
	for r.conn == nil {
		b, _ := os.ReadFile(r.logPath)
		if a, ok := servinglog.Find(b); ok {
			conn, err := grpc.NewClient("passthrough:///"+a.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			r.grpcAddr, r.httpAddr = a.GRPC, a.HTTP
			r.conn, r.api = conn, vspb.NewViewerSessionServiceClient(conn)
			break
		}
		exitedOrLate(errors.New(`no "serving" line in its log`))
	}
	hc := healthpb.NewHealthClient(r.conn)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		exitedOrLate(err)
	}
}

// Kill sends SIGKILL (a crash). It does not wait; see Wait.
func (r *replica) Kill() { _ = r.cmd.Process.Signal(syscall.SIGKILL) }

// Term sends SIGTERM (a rolling update). It does not wait; see Wait.
func (r *replica) Term() { _ = r.cmd.Process.Signal(syscall.SIGTERM) }

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when a signal ended it) and when it exited.
func (r *replica) Wait(timeout time.Duration) (code int, at time.Time, err error) {
	select {
	case <-r.exited:
	case <-time.After(timeout):
		return 0, time.Time{}, fmt.Errorf("replica %s still running after %v", r.id, timeout)
	}
	return r.cmd.ProcessState.ExitCode(), r.exitAt, nil
}

func (r *replica) logTail(n int) string {
	b, _ := os.ReadFile(r.logPath)
	return tail(string(b), n)
}

// logContains reports whether the replica's log has a line containing s.
func (r *replica) logContains(s string) bool {
	b, _ := os.ReadFile(r.logPath)
	return bytes.Contains(b, []byte(s))
}

// logSessionsSince returns the session_id of every log line stamped at or
// after since whose message is msg.
func (r *replica) logSessionsSince(msg string, since time.Time) []string {
	b, _ := os.ReadFile(r.logPath)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Time      time.Time
			Msg       string
			SessionID string `json:"session_id"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg && !l.Time.Before(since) {
			out = append(out, l.SessionID)
		}
	}
	return out
}

// streamErrors returns the replica's log lines of Connect and
// WatchSession streams that ended with a status other than OK or
// CANCELLED (the interceptor logs every RPC's end with its code).
func (r *replica) streamErrors() []string {
	b, _ := os.ReadFile(r.logPath)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Msg, Method, Code string
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "rpc" {
			continue
		}
		if (strings.HasSuffix(l.Method, "/Connect") || strings.HasSuffix(l.Method, "/WatchSession")) && l.Code != "OK" && l.Code != "Canceled" {
			out = append(out, line)
		}
	}
	return out
}

// raceReport returns the first race report of a log.
func raceReport(logs []byte) string {
	i := bytes.Index(logs, []byte("WARNING: DATA RACE"))
	if i < 0 {
		return ""
	}
	return tail(string(logs[i:min(len(logs), i+6000)]), 6000)
}

// balancedConn is a client connection over several replicas, as an app
// behind a load balancer has: a manual resolver lists the addresses and
// policy is "round_robin" or "pick_first" (addresses tried in order). With
// health, round_robin only picks replicas whose gRPC health is SERVING
// (client-side health checking), so a draining replica gets no new
// streams. Extra dial options (interceptors) may be added.
func balancedConn(t *testing.T, policy string, health bool, rs []*replica, opts ...grpc.DialOption) (*grpc.ClientConn, *manual.Resolver) {
	t.Helper()
	res := manual.NewBuilderWithScheme("e2e")
	res.InitialState(resolver.State{Addresses: addresses(rs)})
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]`, policy)
	if health {
		sc += fmt.Sprintf(`,"healthCheckConfig":{"serviceName":%q}`, vspb.ViewerSessionService_ServiceDesc.ServiceName)
	}
	sc += "}"
	opts = append([]grpc.DialOption{
		grpc.WithResolvers(res),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc),
	}, opts...)
	cc, err := grpc.NewClient(res.Scheme()+":///viewersession", opts...)
	if err != nil {
		t.Fatal(err)
	}
	cc.Connect()
	t.Cleanup(func() { cc.Close() })
	return cc, res
}

func addresses(rs []*replica) []resolver.Address {
	var out []resolver.Address
	for _, r := range rs {
		out = append(out, resolver.Address{Addr: r.grpcAddr})
	}
	return out
}

// backend authenticates a call with the API key.
func backend(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+apiKey)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// statusRecorder records how every stream of a connection ended, so a
// test can tell that no stream ended with an error status. Streams the
// client cancels itself (context.Canceled) are not errors.
type statusRecorder struct {
	mu   sync.Mutex
	ends map[string]int // "method code" -> count
	errs []error
}

func newStatusRecorder() *statusRecorder { return &statusRecorder{ends: make(map[string]int)} }

// option is the dial option that installs the recorder.
func (s *statusRecorder) option() grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			s.record(ctx, method, err)
			return nil, err
		}
		return &recordedStream{ClientStream: cs, s: s, ctx: ctx, method: method}, nil
	})
}

func (s *statusRecorder) record(ctx context.Context, method string, err error) {
	short := method[strings.LastIndex(method, "/")+1:]
	code := "OK"
	if err != nil {
		code = grpcCodeOf(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ends[short+" "+code]++
	if err != nil && ctx.Err() == nil && code != "Canceled" {
		s.errs = append(s.errs, fmt.Errorf("%s ended %w", short, err))
	}
}

// errors returns the streams that ended with an error status the client
// did not cause.
func (s *statusRecorder) errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

func (s *statusRecorder) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.ends)
}

type recordedStream struct {
	grpc.ClientStream
	s      *statusRecorder
	ctx    context.Context
	method string
	once   sync.Once
}

func (r *recordedStream) RecvMsg(m any) error {
	err := r.ClientStream.RecvMsg(m)
	if err != nil {
		r.once.Do(func() {
			end := err
			if errors.Is(end, io.EOF) {
				end = nil // the server ended the stream OK
			}
			r.s.record(r.ctx, r.method, end)
		})
	}
	return err
}

// grpcCodeOf is the gRPC code of err's status as text ("OK" for nil).
func grpcCodeOf(err error) string { return status.Code(err).String() }
