package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/internal/redistest"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// readyz returns /readyz's status code and body.
func readyz(t *testing.T, p *serverProcess) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get("http://" + p.httpAddr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitReadyz polls /readyz (another process) until cond holds or the
// deadline passes, and returns how long it took and the last answer.
func waitReadyz(t *testing.T, p *serverProcess, within time.Duration, cond func(int, string) bool) (time.Duration, int, string) {
	t.Helper()
	start := time.Now()
	for {
		code, body := readyz(t, p)
		if cond(code, body) {
			return time.Since(start), code, body
		}
		if time.Since(start) > within {
			t.Fatalf("/readyz still %d %q after %v", code, body, within)
		}
		select {
		case <-p.exited:
			t.Fatalf("server exited: %v\n%s", p.err, p.log())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestReadyzFollowsRedis is the hardening issue's readiness acceptance:
// 503 with the reason while Redis is frozen (SIGSTOP), 200 within 2 s after
// it continues.
func TestReadyzFollowsRedis(t *testing.T) {
	rs := redistest.Start(t)
	// Static AWS credentials: only Redis is in question here.
	p := startServerEnv(t, []string{"AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=test"}, "-redis-url", rs.URL(), "-api-keys", "k")
	waitServing(t, p, healthpb.NewHealthClient(dial(t, p.grpcAddr)))
	waitReadyz(t, p, 10*time.Second, func(code int, _ string) bool { return code == http.StatusOK })

	rs.Pause()
	paused := true
	defer func() {
		if paused {
			rs.Resume()
		}
	}()
	_, code, body := waitReadyz(t, p, 5*time.Second, func(code int, _ string) bool { return code == http.StatusServiceUnavailable })
	if !strings.Contains(body, "redis") {
		t.Errorf("/readyz with Redis frozen = %d %q, want the reason to name redis", code, body)
	}
	t.Logf("Redis frozen: /readyz %d %q", code, strings.TrimSpace(body))

	rs.Resume()
	paused = false
	took, code, _ := waitReadyz(t, p, 10*time.Second, func(code int, _ string) bool { return code == http.StatusOK })
	if took > 2*time.Second {
		t.Errorf("/readyz took %v to return %d after Redis continued, want within 2 s", took, code)
	}
	t.Logf("Redis back: /readyz 200 after %v", took)
	if !strings.Contains(p.log(), "startup check ok: redis") {
		t.Errorf("server log lacks the startup check line for redis:\n%s", p.log())
	}
}

// TestStartWithoutAWSCredentials: the server starts, says at once that it
// has no AWS credentials and what that breaks, and is not ready.
func TestStartWithoutAWSCredentials(t *testing.T) {
	dir := t.TempDir()
	env := []string{
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + dir + "/none", "AWS_SHARED_CREDENTIALS_FILE=" + dir + "/none",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_WEB_IDENTITY_TOKEN_FILE=", "AWS_ROLE_ARN=",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
	}
	p := startServerEnv(t, env, "-api-keys", "k")
	waitServing(t, p, healthpb.NewHealthClient(dial(t, p.grpcAddr)))
	_, code, body := waitReadyz(t, p, 10*time.Second, func(code int, _ string) bool { return code != 0 })
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "aws credentials") {
		t.Errorf("/readyz without AWS credentials = %d %q, want 503 naming aws credentials", code, body)
	}
	if strings.Contains(p.log(), "SDK 20") {
		t.Errorf("the AWS SDK wrote plain-text lines into the JSON log:\n%s", p.log())
	}
	if !strings.Contains(p.log(), "startup check failed: aws credentials") {
		t.Errorf("server log lacks the startup line about AWS credentials:\n%s", p.log())
	}
	// Issue 15: not a transient failure, so no RetryInfo.
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer k"), 10*time.Second)
	defer cancel()
	_, err := vspb.NewViewerSessionServiceClient(dial(t, p.grpcAddr)).CreateSession(ctx, &vspb.CreateSessionRequest{
		Channel: &vspb.Channel{Name: "cam"}, ViewerId: "v"})
	var reason string
	retry := false
	for _, d := range status.Convert(err).Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.RetryInfo:
			retry = true
		}
	}
	if status.Code(err) != codes.FailedPrecondition || reason != "AWS_CREDENTIALS" || retry {
		t.Errorf("CreateSession without AWS credentials = %v (reason %q, RetryInfo %v), want FAILED_PRECONDITION AWS_CREDENTIALS without RetryInfo", err, reason, retry)
	}
}
