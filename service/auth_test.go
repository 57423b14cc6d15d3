package service_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/stacktest"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/service"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

// TestE2EAuthTable: every RPC x every kind of credential gives the
// documented code, and no credential reaches the log at any level.
func TestE2EAuthTable(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	mine := s.Create(t, "auth-mine", nil)
	theirs := s.Create(t, "auth-theirs", nil)
	name := mine.GetSession().GetName()

	creds := []struct {
		name string
		ctx  func(context.Context) context.Context
	}{
		{"none", func(c context.Context) context.Context { return c }},
		{"wrong key", func(c context.Context) context.Context { return stacktest.WithToken(c, "wrong-key-000000") }},
		{"valid key", stacktest.Backend},
		{"own token", func(c context.Context) context.Context { return stacktest.WithToken(c, mine.GetSessionToken()) }},
		{"other's token", func(c context.Context) context.Context { return stacktest.WithToken(c, theirs.GetSessionToken()) }},
	}
	const (
		unauth = codes.Unauthenticated
		denied = codes.PermissionDenied
		ok     = codes.OK
	)
	// want[rpc] lists the codes in the order of creds.
	rpcs := []struct {
		name string
		call func(ctx context.Context) error
		want []codes.Code
	}{
		{"CreateSession", func(ctx context.Context) error {
			_, err := s.API.CreateSession(ctx, &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: s.ARN}, ViewerId: "auth-new"})
			return err
		}, []codes.Code{unauth, unauth, ok, denied, denied}},
		{"GetSession", func(ctx context.Context) error {
			_, err := s.API.GetSession(ctx, &vspb.GetSessionRequest{Name: name})
			return err
		}, []codes.Code{unauth, unauth, ok, denied, denied}},
		{"ListSessions", func(ctx context.Context) error {
			_, err := s.API.ListSessions(ctx, &vspb.ListSessionsRequest{})
			return err
		}, []codes.Code{unauth, unauth, ok, denied, denied}},
		{"WatchSession", func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			w, err := s.API.WatchSession(ctx, &vspb.WatchSessionRequest{Name: name})
			if err != nil {
				return err
			}
			_, err = w.Recv() // the first event, or the auth error
			return err
		}, []codes.Code{unauth, unauth, ok, ok, denied}},
		{"Connect", func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			st, err := s.API.Connect(ctx)
			if err != nil {
				return err
			}
			if err := st.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name}}}); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			m, err := st.Recv()
			if err == nil && m.GetJoined() == nil {
				return errors.New("first Connect message is not joined")
			}
			return err
		}, []codes.Code{unauth, unauth, ok, ok, denied}},
		{"Signal", func(ctx context.Context) error {
			_, err := s.API.Signal(ctx, &vspb.SignalRequest{Name: name, Message: &vspb.SignalRequest_StateReport{
				StateReport: &vspb.ConnectionStateReport{IceState: vspb.IceConnectionState_ICE_CONNECTION_STATE_NEW},
			}})
			return err
		}, []codes.Code{unauth, unauth, ok, ok, denied}},
		{"CloseSession", func(ctx context.Context) error {
			_, err := s.API.CloseSession(ctx, &vspb.CloseSessionRequest{Name: name})
			return err
		}, []codes.Code{unauth, unauth, ok, denied, denied}},
	}
	for _, rpc := range rpcs {
		for i, c := range creds {
			t.Run(rpc.name+"/"+c.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				err := rpc.call(c.ctx(ctx))
				if got := status.Code(err); got != rpc.want[i] {
					t.Errorf("%s with %s = %v (%v), want %v", rpc.name, c.name, got, err, rpc.want[i])
				}
			})
		}
	}

	// No credential in the log, at debug level.
	secrets := []string{stacktest.APIKey, "wrong-key-000000", mine.GetSessionToken(), theirs.GetSessionToken()}
	for _, ice := range mine.GetSession().GetIceServers() {
		if ice.GetCredential() != "" {
			secrets = append(secrets, ice.GetCredential())
		}
	}
	// The token's secret half alone must not appear either.
	secrets = append(secrets, mine.GetSessionToken()[strings.IndexByte(mine.GetSessionToken(), '.')+1:])
	logs := s.Logs.String()
	if len(logs) < 1000 {
		t.Fatalf("captured only %d bytes of log; the scan would prove nothing", len(logs))
	}
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Errorf("the log contains a credential (%.6s...)", sec)
		}
	}
}

// Issue 7 acceptance 4: one request_id, one session, one clientId, and the
// same token.
func TestE2EIdempotentCreate(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	req := &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: s.ARN}, ViewerId: "idem", RequestId: "req-42"}
	first, err := s.API.CreateSession(stacktest.Backend(t.Context()), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.API.CreateSession(stacktest.Backend(t.Context()), req)
	if err != nil {
		t.Fatalf("repeat: %v", err)
	}
	if first.GetSession().GetName() != second.GetSession().GetName() || first.GetSession().GetClientId() != second.GetSession().GetClientId() {
		t.Errorf("repeat gave %s/%s, want %s/%s", second.GetSession().GetName(), second.GetSession().GetClientId(),
			first.GetSession().GetName(), first.GetSession().GetClientId())
	}
	if first.GetSessionToken() == "" || second.GetSessionToken() != first.GetSessionToken() {
		t.Errorf("repeat token differs from the first (or is empty)")
	}
	list, err := s.API.ListSessions(stacktest.Backend(t.Context()), &vspb.ListSessionsRequest{Channel: &vspb.Channel{Arn: s.ARN}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetSessions()); n != 1 {
		t.Errorf("ListSessions after two creates with one request_id = %d sessions, want 1", n)
	}
	// The same request_id with another viewer is refused.
	req.ViewerId = "someone-else"
	if _, err := s.API.CreateSession(stacktest.Backend(t.Context()), req); status.Code(err) != codes.InvalidArgument {
		t.Errorf("request_id reused for another viewer = %v, want INVALID_ARGUMENT", err)
	}
}

// An idempotent repeat on a replica whose token secret is the creating
// replica's returns the same token; on one with another secret it returns
// the session without a token (and logs why, without the token), and the
// token it could not mint still opens the session there: verification
// uses the stored hash.
func TestIdempotentRepeatAcrossSecrets(t *testing.T) {
	emu, arn := emulator(t)
	store := memstore.New() // the replicas' shared store
	logs := &stacktest.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	replica := func(secret string) *served {
		tokens := service.NewTokens([]byte(secret))
		cfg := sessionmgr.DefaultConfig()
		cfg.TokenHash = tokens.Hash
		m := sessionmgr.New(cfg, store, bind.NewSignaler(kvsClient(t, emu, nil)),
			bind.NewClientIDs(clientid.NewMemory(clientid.DefaultConfig())), sessionmgr.WithLogger(log))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = m.Close(ctx)
		})
		return serveTokens(t, m, tokens, log)
	}
	creator, twin, stranger := replica("the shared secret, 32 bytes long"), replica("the shared secret, 32 bytes long"), replica("another secret of its own, 32 b.")
	req := &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arn}, ViewerId: "idem", RequestId: "req-secrets"}
	first, err := creator.api.CreateSession(stacktest.Backend(t.Context()), req)
	if err != nil {
		t.Fatal(err)
	}
	token := first.GetSessionToken()
	if token == "" {
		t.Fatal("CreateSession returned no token")
	}
	again, err := twin.api.CreateSession(stacktest.Backend(t.Context()), req)
	if err != nil || again.GetSession().GetName() != first.GetSession().GetName() || again.GetSessionToken() != token {
		t.Errorf("repeat with the same secret = %s, token equal %v, %v; want the session and its token",
			again.GetSession().GetName(), again.GetSessionToken() == token, err)
	}
	other, err := stranger.api.CreateSession(stacktest.Backend(t.Context()), req)
	if err != nil || other.GetSession().GetName() != first.GetSession().GetName() || other.GetSessionToken() != "" {
		t.Errorf("repeat with another secret = %s, token %t, %v; want the session without a token",
			other.GetSession().GetName(), other.GetSessionToken() != "", err)
	}
	if !strings.Contains(logs.String(), "token not returned") {
		t.Error("the repeat without a token logged nothing")
	}
	if strings.Contains(logs.String(), token[strings.IndexByte(token, '.')+1:]) {
		t.Error("the log contains the session token")
	}
	// A valid token on a backend RPC is PERMISSION_DENIED (an unknown one
	// would be UNAUTHENTICATED).
	_, err = stranger.api.GetSession(stacktest.WithToken(t.Context(), token), &vspb.GetSessionRequest{Name: first.GetSession().GetName()})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetSession with the token on the other secret's replica = %v, want PERMISSION_DENIED (the token is valid there)", err)
	}
}
