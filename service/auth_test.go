package service_test

import (
	"context"
	"errors"
	"github.com/acme/viewersession/internal/stacktest"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
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
