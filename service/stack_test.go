package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/service"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/rediscluster"
	"github.com/acme/viewersession/sessionmgr/redisstore"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const apiKey = "test-api-key-0123456789"

// channelMessageTTL is the test channels' MessageTtlSeconds (the KVS
// minimum); clientId cooldowns are never shorter.
const channelMessageTTL = 5 * time.Second

// stack is the whole service on loopback: the KVS emulator with its
// simulated camera, the real kvs client, an in-memory clientId allocator
// and store, the manager, and the gRPC server.
type stack struct {
	emu      *kvsemu.Emulator
	arn      string
	m        *sessionmgr.Manager
	cc       *grpc.ClientConn
	api      vspb.ViewerSessionServiceClient
	cooldown time.Duration
	logs     *syncBuffer
}

type stackOptions struct {
	mode     camera.Mode
	defaults sessionmgr.Options
	cooldown time.Duration
	// redis: sessions, timelines and clientIds in a real Redis (redisstore,
	// rediscluster, clientid.Redis) instead of memory.
	redis bool
}

// syncBuffer collects the service's logs for tests that scan them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.mode == "" {
		o.mode = camera.CSample
	}
	if o.cooldown == 0 {
		o.cooldown = 2 * time.Second
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	emu, err := kvsemu.Start(t.Context(), ecfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	arn, err := emu.CreateChannel("cam-"+randomSuffix(), channelMessageTTL)
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.StartCamera(arn, o.mode); err != nil {
		t.Fatal(err)
	}

	creds := emu.Credentials()
	kcfg := kvs.DefaultConfig()
	kcfg.Region = emu.Region()
	kcfg.Endpoint = emu.Endpoint()
	kcfg.CAPool = emu.CertPool()
	kcfg.Logger = log
	kc, err := kvs.New(aws.Config{
		Region:      emu.Region(),
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
	}, kcfg)
	if err != nil {
		t.Fatal(err)
	}
	idCfg := clientid.DefaultConfig()
	idCfg.DefaultCooldown = o.cooldown
	mcfg := sessionmgr.DefaultConfig()
	mcfg.MinTimer = 10 * time.Millisecond
	mcfg.DialsPerSecond = 100
	if o.defaults != (sessionmgr.Options{}) {
		mcfg.Defaults = o.defaults
	}
	var (
		store sessionmgr.Store = memstore.New()
		alloc bind.Allocator   = clientid.NewMemory(idCfg)
		opts                   = []sessionmgr.Option{sessionmgr.WithLogger(log)}
	)
	if o.redis {
		ropts, err := redis.ParseURL(redistest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		ropts.ContextTimeoutEnabled = true
		rdb := redis.NewClient(ropts)
		t.Cleanup(func() { rdb.Close() })
		idCfg.KeyPrefix = "vs:v1:" + randomSuffix() // keys of our own on a shared server
		store, alloc = redisstore.New(rdb), clientid.NewRedis(rdb, idCfg)
		mcfg.ReplicaID = "e2e-" + randomSuffix()
		opts = append(opts, sessionmgr.WithCluster(rediscluster.New(rdb)))
	}
	m := sessionmgr.New(mcfg, store, bind.NewSignaler(kc), bind.NewClientIDs(alloc), opts...)

	gs := grpc.NewServer()
	vspb.RegisterViewerSessionServiceServer(gs, service.New(m, service.NewAuth([]string{apiKey}), log))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		gs.Stop()
		<-served
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("manager close: %v", err)
		}
		if t.Failed() {
			t.Logf("service log (tail):\n%s", tail(logs.String(), 6000))
		}
	})
	return &stack{emu: emu, arn: arn, m: m, cc: cc, api: vspb.NewViewerSessionServiceClient(cc), cooldown: o.cooldown, logs: logs}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func randomSuffix() string { return strings.ToLower(rand.Text()[:8]) }

func backend(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+apiKey)
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// create makes a session on the stack's channel.
func (s *stack) create(t *testing.T, viewer string, opts *vspb.SessionOptions) *vspb.CreateSessionResponse {
	t.Helper()
	resp, err := s.api.CreateSession(backend(t.Context()), &vspb.CreateSessionRequest{
		Channel: &vspb.Channel{Arn: s.arn}, ViewerId: viewer, Options: opts,
	})
	if err != nil {
		t.Fatalf("CreateSession(%q): %v", viewer, err)
	}
	return resp
}

// pionOffer makes a real SDP offer (recvonly video) and closes its peer.
func pionOffer(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}
