package assemble

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/internal/testclock"
	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/service"
	"github.com/acme/viewersession/sessionmgr"
)

// TestBuildOneClock: Config.Now reaches the parts Build makes. A session's
// record and its first event carry the fake time, the service's create
// rate limit refills on it (a second create is refused until the fake
// clock, not the real one, moves a second on), and the service's token
// opens the session the manager stored its hash for.
func TestBuildOneClock(t *testing.T) {
	emu, err := kvsemu.Start(t.Context(), func() kvsemu.Config {
		c := kvsemu.DefaultConfig()
		c.Addr = "127.0.0.1:0"
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	arn, err := emu.CreateChannel("clock", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	clk := testclock.New(start)
	cfg := config()
	creds := emu.Credentials()
	cfg.AWS = aws.Config{Region: emu.Region(), Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, "")}
	cfg.KVS.Region, cfg.KVS.Endpoint, cfg.KVS.CAPool = emu.Region(), emu.Endpoint(), emu.CertPool()
	cfg.Now = clk.Now
	limits := service.DefaultLimits()
	limits.CreatesPerSecond, limits.CreateBurst = 1, 1
	cfg.Limits = &limits
	p, err := Build(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close = %v", err)
		}
	}()
	key := metadata.NewIncomingContext(t.Context(), metadata.Pairs("authorization", "Bearer k"))
	create := func(viewer string) (*vspb.CreateSessionResponse, error) {
		return p.Server.CreateSession(key, &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arn}, ViewerId: viewer})
	}

	first, err := create("a")
	if err != nil {
		t.Fatalf("CreateSession = %v", err)
	}
	if got := first.GetSession().GetCreateTime().AsTime(); !got.Equal(start) {
		t.Errorf("session create_time = %v, want the fake clock's %v", got, start)
	}
	id := sessionmgr.SessionID(strings.TrimPrefix(first.GetSession().GetName(), "sessions/"))
	events, err := p.Store.Events(t.Context(), id, 0, 10, false)
	if err != nil || len(events) == 0 {
		t.Fatalf("Events(%s) = %d events, %v; want the first ones", id, len(events), err)
	}
	if got := events[0].Time; !got.Equal(start) {
		t.Errorf("first event's time = %v, want the fake clock's %v", got, start)
	}

	// The token is the service's and opens the session the manager
	// created: a backend RPC with it is refused as a valid token's
	// (PERMISSION_DENIED), not as an unknown credential's.
	if first.GetSessionToken() == "" {
		t.Fatal("CreateSession returned no session token")
	}
	withToken := metadata.NewIncomingContext(t.Context(), metadata.Pairs("authorization", "Bearer "+first.GetSessionToken()))
	if _, err := p.Server.GetSession(withToken, &vspb.GetSessionRequest{Name: first.GetSession().GetName()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetSession with the session's token = %v, want PERMISSION_DENIED (a valid token on a backend RPC)", err)
	}

	// 1 create per second, burst 1: refused until the fake clock moves.
	if _, err := create("b"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second CreateSession at the same fake time = %v, want RESOURCE_EXHAUSTED", err)
	}
	clk.Advance(time.Second)
	third, err := create("c")
	if err != nil {
		t.Fatalf("CreateSession a fake second later = %v, want OK (the limit follows Config.Now)", err)
	}
	if got, want := third.GetSession().GetCreateTime().AsTime(), start.Add(time.Second); !got.Equal(want) {
		t.Errorf("third session's create_time = %v, want %v", got, want)
	}
}
