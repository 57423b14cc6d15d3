// Package stacktest runs the whole service in one test process: the KVS
// emulator with a simulated camera, the real kvs client, the clientId
// allocator and the session store (memory, or a real Redis), the session
// manager, and the gRPC service on a loopback port, assembled by
// internal/assemble as the server assembles them. End-to-end tests of
// service and cmd/viewerctl build on it.
package stacktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/pion/webrtc/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/assemble"
	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr"
)

// APIKey is the backend API key the stack accepts.
const APIKey = "test-api-key-0123456789"

// ChannelMessageTTL is the stack channel's MessageTtlSeconds (the KVS
// minimum); clientId cooldowns are never shorter.
const ChannelMessageTTL = 5 * time.Second

// Options shape a Stack; zero fields take the defaults.
type Options struct {
	// CameraMode is the simulated camera's behaviour. Default c-sample.
	CameraMode camera.Mode
	// Defaults are the manager's session option defaults. Default:
	// sessionmgr.DefaultOptions().
	Defaults sessionmgr.Options
	// Cooldown is the clientId reuse cooldown. Default 2s (the channel's
	// MessageTTL, 5s, wins).
	Cooldown time.Duration
	// Redis keeps sessions, timelines and clientIds in a real Redis
	// (redisstore, redisreplicas, clientid Redis) instead of memory.
	Redis bool
	// ChannelName names the camera's channel. Default "cam-<random>".
	ChannelName string
}

// Stack is the running service. Its resources are released by t.Cleanup
// (Start), or by Close (Open).
type Stack struct {
	Emu      *kvsemu.Emulator
	ARN      string
	Manager  *sessionmgr.Manager
	Conn     *grpc.ClientConn
	API      vspb.ViewerSessionServiceClient
	GRPCAddr string
	// Logs holds the service's JSON logs, at debug level.
	Logs *SyncBuffer

	closers   []func() error // in the order Close runs them
	closeOnce sync.Once
	closeErr  error
}

// Start runs a Stack for the test.
func Start(t *testing.T, o Options) *Stack {
	t.Helper()
	var redisURL string
	if o.Redis {
		redisURL = redistest.URL(t)
	}
	s, err := open(o, redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stack close: %v", err)
		}
		if t.Failed() {
			t.Logf("service log (tail):\n%s", tail(s.Logs.String(), 6000))
		}
	})
	return s
}

// Open runs a Stack outside a test, for an Example: on memory stores only
// (Options.Redis needs Start, whose test provides the Redis server). Close
// stops it.
func Open(o Options) (*Stack, error) {
	if o.Redis {
		return nil, errors.New("stacktest: Open runs on memory stores; use Start for Redis")
	}
	return open(o, "")
}

// Close stops the stack: the gRPC server, the manager, the stores and the
// emulator, in that order. It is idempotent.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, c := range s.closers {
			errs = append(errs, c())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// open starts a Stack; redisURL is the Redis server of Options.Redis. On
// error, what it started is stopped.
func open(o Options, redisURL string) (_ *Stack, err error) {
	if o.CameraMode == "" {
		o.CameraMode = camera.CSample
	}
	if o.Cooldown == 0 {
		o.Cooldown = 2 * time.Second
	}
	if o.ChannelName == "" {
		o.ChannelName = "cam-" + RandomSuffix()
	}
	s := &Stack{Logs: &SyncBuffer{}}
	// cleanups are run last first, like t.Cleanup.
	var cleanups []func() error
	defer func() {
		slices.Reverse(cleanups)
		s.closers = cleanups
		if err != nil {
			_ = s.Close()
		}
	}()
	log := slog.New(slog.NewJSONHandler(s.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	emu, err := kvsemu.Start(context.Background(), ecfg)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() error { _ = emu.Close(); return nil })
	arn, err := emu.CreateChannel(o.ChannelName, ChannelMessageTTL)
	if err != nil {
		return nil, err
	}
	if err := emu.StartCamera(arn, o.CameraMode); err != nil {
		return nil, err
	}

	// The server's assembly (internal/assemble), with what a test changes:
	// short timers, fast dials, a debug log, a short clientId cooldown.
	creds := emu.Credentials()
	ac := assemble.Config{
		Logger: log,
		AWS: aws.Config{
			Region:      emu.Region(),
			Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		},
		KVS:     kvs.DefaultConfig(),
		Manager: sessionmgr.DefaultConfig(),
		IDs:     clientid.DefaultConfig(),
		APIKeys: []string{APIKey},
	}
	ac.KVS.Region, ac.KVS.Endpoint, ac.KVS.CAPool = emu.Region(), emu.Endpoint(), emu.CertPool()
	ac.IDs.DefaultCooldown = o.Cooldown
	ac.Manager.MinTimer = 10 * time.Millisecond
	ac.Manager.DialsPerSecond = 100
	if o.Defaults != (sessionmgr.Options{}) {
		ac.Manager.Defaults = o.Defaults
	}
	if o.Redis {
		rdb, err := assemble.NewRedis("standalone", redisURL)
		if err != nil {
			return nil, err
		}
		ac.Redis = rdb                               // the parts close it
		ac.IDs.KeyPrefix = "vs:v1:" + RandomSuffix() // keys of our own on a shared server
		ac.Manager.ReplicaID = "e2e-" + RandomSuffix()
		// Tests share a Redis server (REDIS_URL) under one API key: each
		// stack keeps its own create rate limit.
		ac.LocalRates = true
	}
	parts, err := assemble.Build(context.Background(), ac)
	if err != nil {
		return nil, err
	}
	// After the gRPC server: the manager, the stores, then Redis.
	cleanups = append(cleanups, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := parts.Close(ctx); err != nil {
			return fmt.Errorf("close the stack's parts: %w", err)
		}
		return nil
	})

	gs := grpc.NewServer()
	vspb.RegisterViewerSessionServiceServer(gs, parts.Server)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		gs.Stop()
		<-served
		return nil, err
	}
	cleanups = append(cleanups, func() error {
		cc.Close()
		gs.Stop()
		<-served
		return nil
	})
	s.Emu, s.ARN, s.Manager, s.Conn, s.API, s.GRPCAddr = emu, arn, parts.Manager, cc, vspb.NewViewerSessionServiceClient(cc), lis.Addr().String()
	return s, nil
}

// Create makes a session on the stack's channel with the API key.
func (s *Stack) Create(t *testing.T, viewer string, opts *vspb.SessionOptions) *vspb.CreateSessionResponse {
	t.Helper()
	resp, err := s.API.CreateSession(Backend(t.Context()), &vspb.CreateSessionRequest{
		Channel: &vspb.Channel{Arn: s.ARN}, ViewerId: viewer, Options: opts,
	})
	if err != nil {
		t.Fatalf("CreateSession(%q): %v", viewer, err)
	}
	return resp
}

// Backend adds the stack's API key to a call.
func Backend(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+APIKey)
}

// WithToken adds a bearer credential (a session token) to a call.
func WithToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// PionOffer makes a real SDP offer (recvonly video) and closes its peer.
func PionOffer(t testing.TB) string {
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

// RandomSuffix is 8 random lower-case characters, for names of one test.
func RandomSuffix() string { return strings.ToLower(rand.Text()[:8]) }

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
