package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/acme/viewersession/internal/servinglog"
)

// TestMain doubles as the server binary: with VS_TEST_RUN_SERVER=1 the test
// binary runs main, so the process tests exercise the real signal handling
// and exit code without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("VS_TEST_RUN_SERVER") == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// serverProcess is the server running as a child process.
type serverProcess struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	webAddr  string

	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan struct{}
	err    error
}

func (p *serverProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *serverProcess) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func startServer(t *testing.T, args ...string) *serverProcess {
	t.Helper()
	return startServerEnv(t, nil, args...)
}

// startServerEnv is startServer with extra environment variables (later
// ones win). The server binds port 0 (-dev's web port too, unless args
// name one) and the addresses are read from its "serving" line: ports
// picked before the start can be taken by another test before the server
// binds them. It returns when the server serves or has exited (a bad
// configuration); the addresses are empty then.
func startServerEnv(t *testing.T, env []string, args ...string) *serverProcess {
	t.Helper()
	p := &serverProcess{exited: make(chan struct{})}
	args = append([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}, args...)
	if !slices.Contains(args, "-web-addr") {
		// -dev would serve browsers on 127.0.0.1:8081: tests never share it.
		args = append([]string{"-web-addr", "127.0.0.1:0"}, args...)
	}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(append(os.Environ(), "VS_TEST_RUN_SERVER=1"), env...)
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("server log:\n%s", p.log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if a, ok := servinglog.Find([]byte(p.log())); ok {
			p.grpcAddr, p.httpAddr, p.webAddr = a.GRPC, a.HTTP, a.Web
			return p
		}
		select {
		case <-p.exited:
			return p
		case <-time.After(20 * time.Millisecond): // polling another process
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not log \"serving\" within 30s:\n%s", p.log())
		}
	}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// waitServing polls the health service until SERVING: the server is another
// process, so polling with a deadline is the only way to know it is up.
func waitServing(t *testing.T, p *serverProcess, hc healthpb.HealthClient) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("server exited before serving: %v\n%s", p.err, p.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not SERVING after 30s (last error %v)", err)
		}
	}
}

func TestServerServesAndDrainsOnSIGTERM(t *testing.T) {
	const drain = 3 * time.Second
	p := startServer(t, "-drain-timeout", drain.String())
	cc := dial(t, p.grpcAddr)
	hc := healthpb.NewHealthClient(cc)
	waitServing(t, p, hc)

	// Reflection lists the API and health (what grpcurl list shows).
	rc, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	_ = rc.CloseSend()
	for _, want := range []string{"viewersession.v1.ViewerSessionService", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(services, " "), want) {
			t.Errorf("reflection services = %v, want %s", services, want)
		}
	}

	// /metrics answers Prometheus text.
	res, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "# TYPE go_goroutines gauge") {
		t.Errorf("GET /metrics = %d %.200q, want 200 with Prometheus text", res.StatusCode, body)
	}

	// Watch health, then SIGTERM: the watcher sees NOT_SERVING.
	watchCtx, cancelWatch := context.WithCancel(t.Context())
	defer cancelWatch()
	w, err := hc.Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch = %v, %v; want SERVING", got, err)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	got, err := w.Recv()
	if err != nil || got.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch after SIGTERM = %v, %v; want NOT_SERVING", got, err)
	}
	cancelWatch() // the last open stream ends: graceful stop completes
	select {
	case <-p.exited:
	case <-time.After(drain + 5*time.Second):
		t.Fatalf("server still running %v after SIGTERM", time.Since(start))
	}
	if elapsed := time.Since(start); elapsed > drain {
		t.Errorf("server exited %v after SIGTERM, want within the drain timeout %v", elapsed, drain)
	}
	if p.err != nil {
		t.Errorf("server exit = %v, want 0", p.err)
	}
	t.Logf("exited 0 after %v", time.Since(start))
}

func TestServerCutsStreamsAtDrainTimeout(t *testing.T) {
	const drain = 1 * time.Second
	p := startServer(t, "-drain-timeout", drain.String())
	cc := dial(t, p.grpcAddr)
	hc := healthpb.NewHealthClient(cc)
	waitServing(t, p, hc)
	w, err := hc.Watch(t.Context(), &healthpb.HealthCheckRequest{}) // held open on purpose
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(drain + 10*time.Second):
		t.Fatalf("server still running %v after SIGTERM with an open stream", time.Since(start))
	}
	elapsed := time.Since(start)
	if elapsed < drain {
		t.Errorf("server exited after %v, before the drain timeout %v, with a stream open", elapsed, drain)
	}
	if p.err != nil {
		t.Errorf("server exit = %v, want 0", p.err)
	}
	if !strings.Contains(p.log(), "drain timeout reached") {
		t.Errorf("server log lacks the drain-timeout warning:\n%s", p.log())
	}
}

func TestServerRejectsBadConfig(t *testing.T) {
	p := startServer(t, "-grpc-addr", "nonsense", "-drain-timeout", "-5s")
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("server with a bad configuration did not exit")
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit = %v, want a non-zero exit code", p.err)
	}
	log := p.log()
	for _, want := range []string{"-grpc-addr \"nonsense\"", "-drain-timeout -5s"} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr = %q, want it to name %q", log, want)
		}
	}
	if n := strings.Count(log, "invalid configuration"); n != 1 {
		t.Errorf("stderr has %d 'invalid configuration' messages, want one message naming every problem", n)
	}
}
