package service_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/internal/stacktest"
	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/service"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/redisstore"
)

// secondKey is a second backend API key of the limited servers.
const secondKey = "second-api-key-9876543210"

// served is a service over a manager as cmd/server serves it: the codec,
// the interceptors (metrics), limits.
type served struct {
	api vspb.ViewerSessionServiceClient
	cc  *grpc.ClientConn
	reg *prometheus.Registry
}

// serve serves a stack's manager with tokens of its own: it verifies the
// stack's tokens (by their stored hash) but cannot mint them (the stack's
// secret is its own), so the sessions it creates come without a token.
func serve(t *testing.T, m *sessionmgr.Manager, log *slog.Logger, opts ...service.Option) *served {
	t.Helper()
	return serveTokens(t, m, service.NewTokens(nil), log, opts...)
}

// serveTokens serves m with tokens, whose Hash m's Config.TokenHash is.
func serveTokens(t *testing.T, m *sessionmgr.Manager, tokens *service.Tokens, log *slog.Logger, opts ...service.Option) *served {
	t.Helper()
	reg := prometheus.NewRegistry()
	mw := service.NewInterceptors(log, reg)
	svc := service.New(m, service.NewAuth([]string{stacktest.APIKey, secondKey}, tokens), log, opts...)
	gs := grpc.NewServer(grpc.ForceServerCodecV2(service.Codec()), grpc.InTapHandle(mw.Tap(svc.Tap)),
		grpc.ChainUnaryInterceptor(mw.Unary()...), grpc.ChainStreamInterceptor(mw.Stream()...))
	vspb.RegisterViewerSessionServiceServer(gs, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); gs.Stop(); <-done })
	return &served{api: vspb.NewViewerSessionServiceClient(cc), cc: cc, reg: reg}
}

func withKey(ctx context.Context, key string) context.Context {
	return stacktest.WithToken(ctx, key)
}

func details(err error) (info *errdetails.ErrorInfo, quota *errdetails.QuotaFailure, retry *errdetails.RetryInfo, bad *errdetails.BadRequest) {
	for _, d := range status.Convert(err).Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.QuotaFailure:
			quota = d
		case *errdetails.RetryInfo:
			retry = d
		case *errdetails.BadRequest:
			bad = d
		}
	}
	return
}

// Defect 2 (issue 15): 2,000 WatchSession streams on one token took the
// server to 1 GB. Streams per session and per API key are bounded; past
// the limit RESOURCE_EXHAUSTED STREAM_LIMIT with QuotaFailure.
func TestStreamLimits(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	l := service.DefaultLimits()
	l.StreamsPerSession, l.StreamsPerAPIKey = 3, 4
	srv := serve(t, s.Manager, slog.New(slog.DiscardHandler), service.WithLimits(l))
	cs := s.Create(t, "streams", nil)
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()

	open := func(ctx context.Context, name string) (grpc.ServerStreamingClient[vspb.WatchSessionResponse], error) {
		w, err := srv.api.WatchSession(ctx, &vspb.WatchSessionRequest{Name: name})
		if err != nil {
			return nil, err
		}
		if _, err := w.Recv(); err != nil { // the first event, or the refusal
			return nil, err
		}
		return w, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for i := range 3 {
		c := stacktest.WithToken(ctx, token) // the app's token
		if i == 2 {
			c = stacktest.Backend(ctx) // and a backend on the same session
		}
		if _, err := open(c, name); err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
	}
	_, err := open(stacktest.WithToken(ctx, token), name)
	info, quota, _, _ := details(err)
	if status.Code(err) != codes.ResourceExhausted || info.GetReason() != "STREAM_LIMIT" || len(quota.GetViolations()) != 1 {
		t.Fatalf("4th stream on one session = %v (%v, %v), want RESOURCE_EXHAUSTED STREAM_LIMIT with QuotaFailure", err, info, quota)
	}
	if got := quota.GetViolations()[0].GetSubject(); got != "session:"+strings.TrimPrefix(name, "sessions/") {
		t.Errorf("QuotaFailure subject %q, want the session", got)
	}

	// Per API key: 1 open above, 3 more on other sessions, then refused.
	for i := range 3 {
		other := s.Create(t, fmt.Sprintf("other-%d", i), nil)
		_, err := open(stacktest.Backend(ctx), other.GetSession().GetName())
		if i < 3 && err != nil {
			t.Fatalf("backend stream %d: %v", i+2, err)
		}
	}
	fifth := s.Create(t, "fifth", nil)
	_, err = open(stacktest.Backend(ctx), fifth.GetSession().GetName())
	if info, _, _, _ := details(err); status.Code(err) != codes.ResourceExhausted || info.GetReason() != "STREAM_LIMIT" {
		t.Fatalf("5th backend stream of one key = %v, want RESOURCE_EXHAUSTED STREAM_LIMIT", err)
	}
	if _, err := open(withKey(ctx, secondKey), fifth.GetSession().GetName()); err != nil {
		t.Errorf("another API key's stream = %v, want it open", err)
	}

	// Closing streams gives their places back.
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := open(stacktest.WithToken(t.Context(), token), name)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stream after the others closed = %v, want open", err)
		}
		time.Sleep(20 * time.Millisecond) // polling the server's count of closed streams
	}
}

// Defect 5 (issue 15): one API key created and closed 60,000 sessions in
// 15 s. Creates are a token bucket per API key: past it RESOURCE_EXHAUSTED
// RATE_LIMITED with QuotaFailure and RetryInfo; another key is not
// affected.
func TestCreateRateLimit(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	l := service.DefaultLimits()
	l.CreatesPerSecond, l.CreateBurst = 1, 3
	srv := serve(t, s.Manager, slog.New(slog.DiscardHandler), service.WithLimits(l))
	create := func(key string) error {
		_, err := srv.api.CreateSession(withKey(t.Context(), key), &vspb.CreateSessionRequest{
			Channel: &vspb.Channel{Arn: s.ARN}, ViewerId: "v" + stacktest.RandomSuffix()})
		return err
	}
	for i := range 3 {
		if err := create(stacktest.APIKey); err != nil {
			t.Fatalf("create %d inside the burst: %v", i+1, err)
		}
	}
	err := create(stacktest.APIKey)
	info, quota, retry, _ := details(err)
	if status.Code(err) != codes.ResourceExhausted || info.GetReason() != "RATE_LIMITED" || quota == nil || retry == nil {
		t.Fatalf("create past the burst = %v, want RESOURCE_EXHAUSTED RATE_LIMITED with QuotaFailure and RetryInfo", err)
	}
	if d := retry.GetRetryDelay().AsDuration(); d <= 0 || d > time.Second {
		t.Errorf("RetryInfo %v, want (0, 1s] at 1/s", d)
	}
	if err := create(secondKey); err != nil {
		t.Errorf("another API key's create = %v, want OK", err)
	}
	// A flood while refused is refused before any handler runs (the tap),
	// with the same status, and counted.
	for i := range 50 {
		err := create(stacktest.APIKey)
		var info *errdetails.ErrorInfo
		var quota *errdetails.QuotaFailure
		if info, quota, retry, _ = details(err); status.Code(err) != codes.ResourceExhausted || info.GetReason() != "RATE_LIMITED" || quota == nil || retry == nil {
			t.Fatalf("flood create %d = %v, want RESOURCE_EXHAUSTED RATE_LIMITED with QuotaFailure and RetryInfo", i, err)
		}
	}
	if n := testutil.ToFloat64(handled(t, srv.reg, "/viewersession.v1.ViewerSessionService/CreateSession", "ResourceExhausted")); n != 51 {
		t.Errorf("grpc_server_handled_total{CreateSession,ResourceExhausted} = %v, want 51 (every refusal counted)", n)
	}
	time.Sleep(retry.GetRetryDelay().AsDuration()) // the wait the last refusal asked for
	if err := create(stacktest.APIKey); err != nil {
		t.Errorf("create after the asked wait = %v, want OK", err)
	}
}

// Defect 5 (issue 15): app messages per session are a token bucket too,
// on Signal and on Connect.
func TestAppMessageRateLimit(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	l := service.DefaultLimits()
	l.AppMessagesPerSecond, l.AppMessageBurst = 1, 5
	srv := serve(t, s.Manager, slog.New(slog.DiscardHandler), service.WithLimits(l))
	cs := s.Create(t, "chatty", nil)
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()
	report := &vspb.SignalRequest{Name: name, Message: &vspb.SignalRequest_StateReport{StateReport: &vspb.ConnectionStateReport{IceState: vspb.IceConnectionState_ICE_CONNECTION_STATE_NEW}}}
	var refused error
	for i := range 8 {
		if _, err := srv.api.Signal(stacktest.WithToken(t.Context(), token), report); err != nil {
			if i < 5 {
				t.Fatalf("report %d inside the burst: %v", i+1, err)
			}
			refused = err
			break
		}
	}
	info, quota, retry, _ := details(refused)
	if status.Code(refused) != codes.ResourceExhausted || info.GetReason() != "RATE_LIMITED" || quota == nil || retry == nil {
		t.Fatalf("report past the burst = %v, want RESOURCE_EXHAUSTED RATE_LIMITED with QuotaFailure and RetryInfo", refused)
	}
	// The same bucket on Connect: its stream ends with the refusal.
	stream, err := srv.api.Connect(stacktest.WithToken(t.Context(), token))
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name}}})
	for range 3 {
		_ = stream.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_StateReport{StateReport: report.GetStateReport()}})
	}
	for {
		_, err := stream.Recv()
		if err != nil {
			if info, _, _, _ := details(err); status.Code(err) != codes.ResourceExhausted || info.GetReason() != "RATE_LIMITED" {
				t.Errorf("Connect past the rate = %v, want RESOURCE_EXHAUSTED RATE_LIMITED", err)
			}
			break
		}
	}
}

// Defect 8 (issue 15): the limits the proto documents are the ones
// enforced, and malformed requests get ErrorInfo and are counted.
func TestLimitsOfTheProto(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	srv := serve(t, s.Manager, slog.New(slog.DiscardHandler))
	cs := s.Create(t, "proto-limits", nil)
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()
	own := stacktest.WithToken(t.Context(), token)
	idx := func(v uint32) *uint32 { return &v }
	const cand = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"
	candidate := func(c *vspb.IceCandidate) *vspb.SignalRequest {
		return &vspb.SignalRequest{Name: name, Message: &vspb.SignalRequest_Candidate{Candidate: c}}
	}
	tests := []struct {
		name      string
		give      *vspb.SignalRequest
		wantField string
	}{
		{"sdp_mid of 65 bytes", candidate(&vspb.IceCandidate{Candidate: cand, SdpMid: strings.Repeat("m", 65)}), "candidate.sdp_mid"},
		{"sdp_mline_index 64", candidate(&vspb.IceCandidate{Candidate: cand, SdpMlineIndex: idx(64)}), "candidate.sdp_mline_index"},
		{"sdp_mline_index 70000", candidate(&vspb.IceCandidate{Candidate: cand, SdpMlineIndex: idx(70000)}), "candidate.sdp_mline_index"},
		{"username_fragment of 257 bytes", candidate(&vspb.IceCandidate{Candidate: cand, SdpMid: "0", UsernameFragment: strings.Repeat("u", 257)}), "candidate.username_fragment"},
		{"unknown ice_state", &vspb.SignalRequest{Name: name, Message: &vspb.SignalRequest_StateReport{StateReport: &vspb.ConnectionStateReport{IceState: 99}}}, "state_report.ice_state"},
		{"unknown peer_state", &vspb.SignalRequest{Name: name, Message: &vspb.SignalRequest_StateReport{StateReport: &vspb.ConnectionStateReport{PeerState: -1}}}, "state_report.peer_state"},
	}
	for _, tt := range tests {
		_, err := srv.api.Signal(own, tt.give)
		_, _, _, bad := details(err)
		if status.Code(err) != codes.InvalidArgument || reasonOf(err) != "INVALID_ARGUMENT" || len(bad.GetFieldViolations()) != 1 || bad.GetFieldViolations()[0].GetField() != tt.wantField {
			t.Errorf("%s: %v (%v), want INVALID_ARGUMENT on %s", tt.name, err, bad, tt.wantField)
		}
	}
	// The boundaries themselves are accepted.
	if _, err := srv.api.Signal(own, candidate(&vspb.IceCandidate{Candidate: cand, SdpMid: strings.Repeat("m", 64), SdpMlineIndex: idx(63)})); status.Code(err) == codes.InvalidArgument {
		t.Errorf("sdp_mid of 64 bytes and sdp_mline_index 63: %v, want them accepted", err)
	}

	// after_sequence beyond the end: refused at once, not a silent wait.
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	w, err := srv.api.WatchSession(stacktest.Backend(wctx), &vspb.WatchSessionRequest{Name: name, AfterSequence: 1 << 40})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.OutOfRange || reasonOf(err) != "AFTER_SEQUENCE_OUT_OF_RANGE" {
		t.Errorf("WatchSession after_sequence beyond the end = %v, want OUT_OF_RANGE AFTER_SEQUENCE_OUT_OF_RANGE", err)
	}
	stream, err := srv.api.Connect(stacktest.WithToken(wctx, token))
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name, AfterSequence: 1 << 40}}})
	for err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.OutOfRange {
		t.Errorf("Connect join after_sequence beyond the end = %v, want OUT_OF_RANGE", err)
	}

	// Invalid UTF-8 in a string field and bytes that are no protobuf at
	// all: INVALID_ARGUMENT MALFORMED_REQUEST, counted.
	badUTF8 := protowire.AppendTag(nil, 1, protowire.BytesType) // GetSessionRequest.name
	badUTF8 = protowire.AppendBytes(badUTF8, []byte("sessions/\xff\xfe"))
	for _, body := range [][]byte{badUTF8, {0xff, 0xff, 0xff}} {
		err := srv.cc.Invoke(stacktest.Backend(t.Context()), "/viewersession.v1.ViewerSessionService/GetSession", body, new([]byte), grpc.ForceCodecV2(rawCodec{}))
		if status.Code(err) != codes.InvalidArgument || reasonOf(err) != "MALFORMED_REQUEST" {
			t.Errorf("GetSession with %x = %v (reason %q), want INVALID_ARGUMENT MALFORMED_REQUEST", body, err, reasonOf(err))
		}
	}
	stream2, err := srv.cc.NewStream(own, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/viewersession.v1.ViewerSessionService/Connect", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	_ = stream2.SendMsg([]byte{0xff, 0xff, 0xff})
	if err := stream2.RecvMsg(new([]byte)); status.Code(err) != codes.InvalidArgument || reasonOf(err) != "MALFORMED_REQUEST" {
		t.Errorf("Connect with a malformed first message = %v, want INVALID_ARGUMENT MALFORMED_REQUEST", err)
	}
	got := testutil.ToFloat64(handled(t, srv.reg, "/viewersession.v1.ViewerSessionService/GetSession", "InvalidArgument"))
	if got != 2 {
		t.Errorf("grpc_server_handled_total{GetSession,InvalidArgument} = %v, want 2 (the malformed requests counted)", got)
	}
}

// handled returns the collector of one grpc_server_handled_total series.
func handled(t *testing.T, reg *prometheus.Registry, method, code string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var gotMethod, gotCode string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "grpc_method":
					gotMethod = l.GetValue()
				case "grpc_code":
					gotCode = l.GetValue()
				}
			}
			if gotMethod == method && gotCode == code {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return 0 })
}

// rawCodec sends and receives bytes as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// Defect 10 (issue 15): ListSessions returned TURN usernames and
// credentials for every session, ended ones included. Backend views omit
// them unless asked for, and never for an ended session.
func TestBackendViewsOmitTURNCredentials(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	srv := serve(t, s.Manager, slog.New(slog.DiscardHandler))
	cs := s.Create(t, "turn", nil)
	name := cs.GetSession().GetName()
	if !hasCredentials(cs.GetSession()) {
		t.Fatal("the emulator's session has no TURN credentials to begin with: the test would prove nothing")
	}
	backendCtx := stacktest.Backend(t.Context())
	list, err := srv.api.ListSessions(backendCtx, &vspb.ListSessionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sess := range list.GetSessions() {
		if hasCredentials(sess) {
			t.Errorf("ListSessions returned TURN credentials for %s without include_ice_credentials", sess.GetName())
		}
		if len(sess.GetIceServers()) == 0 {
			t.Errorf("ListSessions dropped %s's ICE server URLs, want only the credentials gone", sess.GetName())
		}
	}
	got, err := srv.api.GetSession(backendCtx, &vspb.GetSessionRequest{Name: name})
	if err != nil || hasCredentials(got.GetSession()) {
		t.Errorf("GetSession without include_ice_credentials: %v, credentials %v; want none", err, hasCredentials(got.GetSession()))
	}
	got, err = srv.api.GetSession(backendCtx, &vspb.GetSessionRequest{Name: name, IncludeIceCredentials: true})
	if err != nil || !hasCredentials(got.GetSession()) {
		t.Errorf("GetSession with include_ice_credentials: %v, credentials %v; want them", err, hasCredentials(got.GetSession()))
	}
	closed, err := srv.api.CloseSession(backendCtx, &vspb.CloseSessionRequest{Name: name})
	if err != nil || hasCredentials(closed.GetSession()) {
		t.Errorf("CloseSession: %v, credentials %v; want none", err, hasCredentials(closed.GetSession()))
	}
	got, err = srv.api.GetSession(backendCtx, &vspb.GetSessionRequest{Name: name, IncludeIceCredentials: true})
	if err != nil || hasCredentials(got.GetSession()) {
		t.Errorf("GetSession of the ended session with include_ice_credentials: %v, credentials %v; want none", err, hasCredentials(got.GetSession()))
	}
	list, err = srv.api.ListSessions(backendCtx, &vspb.ListSessionsRequest{IncludeIceCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, sess := range list.GetSessions() {
		if sess.GetName() == name && hasCredentials(sess) {
			t.Errorf("ListSessions returned the ended session's TURN credentials")
		}
	}
}

func hasCredentials(s *vspb.Session) bool {
	for _, is := range s.GetIceServers() {
		if is.GetUsername() != "" || is.GetCredential() != "" {
			return true
		}
	}
	return false
}

// redisStack is a service whose store is a private Redis the test can stop.
type redisStack struct {
	srv   *served
	redis *redistest.Server
	arn   string
	logs  *stacktest.SyncBuffer
}

func newRedisStack(t *testing.T) *redisStack {
	t.Helper()
	r := redistest.Start(t)
	emu, arn := emulator(t)
	logs := &stacktest.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.ReadTimeout, opts.WriteTimeout, opts.DialTimeout, opts.ContextTimeoutEnabled, opts.MaxRetries = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, true, -1
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	tokens := service.NewTokens(nil)
	mcfg := sessionmgr.DefaultConfig()
	mcfg.TokenHash = tokens.Hash
	m := sessionmgr.New(mcfg, redisstore.New(rdb), bind.NewSignaler(kvsClient(t, emu, nil)),
		bind.NewClientIDs(clientid.NewRedis(rdb, clientid.DefaultConfig())), sessionmgr.WithLogger(log))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	return &redisStack{srv: serveTokens(t, m, tokens, log), redis: r, arn: arn, logs: logs}
}

func emulator(t *testing.T) (*kvsemu.Emulator, string) {
	t.Helper()
	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	emu, err := kvsemu.Start(t.Context(), ecfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	arn, err := emu.CreateChannel("cam-"+stacktest.RandomSuffix(), stacktest.ChannelMessageTTL)
	if err != nil {
		t.Fatal(err)
	}
	return emu, arn
}

// kvsClient is a KVS client of the emulator; creds replaces its
// credentials when set.
func kvsClient(t *testing.T, emu *kvsemu.Emulator, creds aws.CredentialsProvider) *kvs.Client {
	t.Helper()
	if creds == nil {
		c := emu.Credentials()
		creds = credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")
	}
	kcfg := kvs.DefaultConfig()
	kcfg.Region, kcfg.Endpoint, kcfg.CAPool = emu.Region(), emu.Endpoint(), emu.CertPool()
	kc, err := kvs.New(aws.Config{Region: emu.Region(), Credentials: creds}, kcfg)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// Defect 4 (issue 15): during a store outage an app got UNKNOWN without
// ErrorInfo, and a valid session token on a backend RPC was told "invalid
// API key". Both are UNAVAILABLE with ErrorInfo and RetryInfo.
func TestStoreOutageAuth(t *testing.T) {
	rs := newRedisStack(t)
	cs, err := rs.srv.api.CreateSession(stacktest.Backend(t.Context()), &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: rs.arn}, ViewerId: "outage"})
	if err != nil {
		t.Fatal(err)
	}
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()
	rs.redis.Pause()
	defer rs.redis.Resume()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = rs.srv.api.Signal(stacktest.WithToken(ctx, token), &vspb.SignalRequest{Name: name,
		Message: &vspb.SignalRequest_StateReport{StateReport: &vspb.ConnectionStateReport{}}})
	info, _, retry, _ := details(err)
	if status.Code(err) != codes.Unavailable || info.GetReason() != "UNAVAILABLE" || retry == nil {
		t.Errorf("Signal with a valid token during the outage = %v, want UNAVAILABLE with ErrorInfo and RetryInfo", err)
	}
	_, err = rs.srv.api.GetSession(stacktest.WithToken(ctx, token), &vspb.GetSessionRequest{Name: name})
	info, _, retry, _ = details(err)
	if status.Code(err) != codes.Unavailable || info.GetReason() != "UNAVAILABLE" || retry == nil {
		t.Errorf("GetSession with a session token during the outage = %v, want UNAVAILABLE (not \"invalid API key\")", err)
	}
	w, err := rs.srv.api.WatchSession(stacktest.WithToken(ctx, token), &vspb.WatchSessionRequest{Name: name})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.Unavailable || reasonOf(err) != "UNAVAILABLE" {
		t.Errorf("WatchSession with a valid token during the outage = %v, want UNAVAILABLE with ErrorInfo", err)
	}
	rs.redis.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := rs.srv.api.GetSession(stacktest.Backend(t.Context()), &vspb.GetSessionRequest{Name: name})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetSession after the outage = %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling Redis's return
	}
}

// Defect 7 (issue 15): an invalid channel.region (echoed raw, CR/LF
// included) and missing AWS credentials were UNAVAILABLE with RetryInfo,
// so clients retried for ever. They are FAILED_PRECONDITION
// INVALID_REGION / AWS_CREDENTIALS without RetryInfo, and nothing raw is
// echoed.
func TestMisconfigurationIsNotTransient(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	srv := serve(t, s.Manager, slog.New(slog.DiscardHandler))
	for _, region := range []string{"us-west-2\r\nX-Injected: yes", "mars-1", "US-WEST-2", strings.Repeat("a", 300)} {
		_, err := srv.api.CreateSession(stacktest.Backend(t.Context()), &vspb.CreateSessionRequest{
			Channel: &vspb.Channel{Name: "demo", Region: region}, ViewerId: "v"})
		info, _, retry, _ := details(err)
		if status.Code(err) != codes.FailedPrecondition || info.GetReason() != "INVALID_REGION" || retry != nil {
			t.Errorf("region %q: %v, want FAILED_PRECONDITION INVALID_REGION without RetryInfo", region, err)
		}
		if msg := status.Convert(err).Message(); strings.ContainsAny(msg, "\r\n") || len(msg) > 300 {
			t.Errorf("region %q: message %q echoes it raw", region, msg)
		}
	}

	emu, arn := emulator(t)
	noCreds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("no EC2 IMDS role found, operation error ec2imds: GetMetadata, dial tcp 169.254.169.254:80: connect: network is unreachable")
	})
	m := sessionmgr.New(sessionmgr.DefaultConfig(), memstore.New(), bind.NewSignaler(kvsClient(t, emu, noCreds)),
		bind.NewClientIDs(clientid.NewMemory(clientid.DefaultConfig())), sessionmgr.WithLogger(slog.New(slog.DiscardHandler)))
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	srv2 := serve(t, m, slog.New(slog.DiscardHandler))
	_, err := srv2.api.CreateSession(stacktest.Backend(t.Context()), &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arn}, ViewerId: "v"})
	info, _, retry, _ := details(err)
	if status.Code(err) != codes.FailedPrecondition || info.GetReason() != "AWS_CREDENTIALS" || retry != nil {
		t.Errorf("CreateSession without AWS credentials = %v, want FAILED_PRECONDITION AWS_CREDENTIALS without RetryInfo", err)
	}
	if msg := status.Convert(err).Message(); strings.Contains(msg, "169.254") {
		t.Errorf("message %q carries an internal address", msg)
	}
}

// Defect 9 (issue 15): failure messages to apps carried internal URLs and
// addresses (`Post "https://127.0.0.1:44567/...": dial tcp ...`). They
// say what failed in plain words; the details go to the log with the
// session id.
func TestFailureMessagesHideInternals(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	cs := s.Create(t, "unlucky", nil)
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()
	_ = s.Emu.Close() // KVS goes away: the join's signaling dial fails
	rc := connectRaw(t, s, token, name, 0)
	evs, err := rc.drain(t, 30*time.Second)
	if status.Code(err) == codes.OK {
		t.Fatalf("the session survived KVS going away (%d events), the test proves nothing", len(evs))
	}
	check := func(what, msg string) {
		for _, bad := range []string{"127.0.0.1", "https://", "wss://", "dial tcp"} {
			if strings.Contains(msg, bad) {
				t.Errorf("%s %q carries %q", what, msg, bad)
			}
		}
	}
	check("the stream's status", status.Convert(err).Message())
	for _, e := range evs {
		check(e.GetType().String()+" event", e.GetMessage())
		check(e.GetType().String()+" failure", e.GetFailure().GetMessage())
	}
	id := strings.TrimPrefix(name, "sessions/")
	if !strings.Contains(s.Logs.String(), id) || !strings.Contains(s.Logs.String(), "127.0.0.1") {
		t.Errorf("the log lacks the failure's details with the session id")
	}
}
