package kvsemu

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/pion/logging"
	"github.com/pion/turn/v4"
)

// TestAWSSDKControlPlane is acceptance 1's first half: aws-sdk-go-v2's
// kinesisvideo client creates, describes, resolves and deletes a channel.
func TestAWSSDKControlPlane(t *testing.T) {
	emu := startEmu(t, nil)
	kv := awsClient(emu, emu.cfg.SecretAccessKey)
	ctx := t.Context()

	created, err := kv.CreateSignalingChannel(ctx, &kinesisvideo.CreateSignalingChannelInput{
		ChannelName:               aws.String("front-door"),
		SingleMasterConfiguration: &types.SingleMasterConfiguration{MessageTtlSeconds: aws.Int32(30)},
	})
	if err != nil {
		t.Fatalf("CreateSignalingChannel() error: %v", err)
	}
	arn := aws.ToString(created.ChannelARN)
	if !strings.HasPrefix(arn, "arn:aws:kinesisvideo:us-west-2:111122223333:channel/front-door/") {
		t.Errorf("ChannelARN = %q, want the KVS shape", arn)
	}

	for _, in := range []*kinesisvideo.DescribeSignalingChannelInput{
		{ChannelName: aws.String("front-door")},
		{ChannelARN: aws.String(arn)},
	} {
		got, err := kv.DescribeSignalingChannel(ctx, in)
		if err != nil {
			t.Fatalf("DescribeSignalingChannel() error: %v", err)
		}
		info := got.ChannelInfo
		if aws.ToString(info.ChannelARN) != arn || info.ChannelStatus != types.StatusActive ||
			info.ChannelType != types.ChannelTypeSingleMaster {
			t.Errorf("ChannelInfo = %+v, want ACTIVE SINGLE_MASTER %s", info, arn)
		}
		if ttl := aws.ToInt32(info.SingleMasterConfiguration.MessageTtlSeconds); ttl != 30 {
			t.Errorf("MessageTtlSeconds = %d, want 30", ttl)
		}
		if since := time.Since(aws.ToTime(info.CreationTime)); since < 0 || since > time.Minute {
			t.Errorf("CreationTime = %v, want about now", info.CreationTime)
		}
	}

	for _, role := range []types.ChannelRole{types.ChannelRoleViewer, types.ChannelRoleMaster} {
		ep, err := kv.GetSignalingChannelEndpoint(ctx, &kinesisvideo.GetSignalingChannelEndpointInput{
			ChannelARN: aws.String(arn),
			SingleMasterChannelEndpointConfiguration: &types.SingleMasterChannelEndpointConfiguration{
				Protocols: []types.ChannelProtocol{types.ChannelProtocolWss, types.ChannelProtocolHttps},
				Role:      role,
			},
		})
		if err != nil {
			t.Fatalf("GetSignalingChannelEndpoint(%s) error: %v", role, err)
		}
		got := map[types.ChannelProtocol]string{}
		for _, e := range ep.ResourceEndpointList {
			got[e.Protocol] = aws.ToString(e.ResourceEndpoint)
		}
		if got[types.ChannelProtocolWss] != emu.WSSEndpoint() || got[types.ChannelProtocolHttps] != emu.Endpoint() {
			t.Errorf("GetSignalingChannelEndpoint(%s) = %v, want %s and %s", role, got, emu.WSSEndpoint(), emu.Endpoint())
		}
		if !strings.HasPrefix(got[types.ChannelProtocolWss], "wss://127.0.0.1:") {
			t.Errorf("WSS endpoint = %q, want wss://127.0.0.1:<port>", got[types.ChannelProtocolWss])
		}
	}

	if _, err := kv.DeleteSignalingChannel(ctx, &kinesisvideo.DeleteSignalingChannelInput{ChannelARN: aws.String(arn)}); err != nil {
		t.Fatalf("DeleteSignalingChannel() error: %v", err)
	}
	_, err = kv.DescribeSignalingChannel(ctx, &kinesisvideo.DescribeSignalingChannelInput{ChannelARN: aws.String(arn)})
	if nf := (*types.ResourceNotFoundException)(nil); !errors.As(err, &nf) {
		t.Errorf("DescribeSignalingChannel(deleted) = %v, want ResourceNotFoundException", err)
	}
	c := emu.Counters()
	for op, want := range map[string]int64{
		OpCreateSignalingChannel: 1, OpDescribeSignalingChannel: 3, OpGetSignalingChannelEndpoint: 2, OpDeleteSignalingChannel: 1,
	} {
		if c.Calls[op] != want {
			t.Errorf("Counters().Calls[%s] = %d, want %d", op, c.Calls[op], want)
		}
	}
}

// TestAWSSDKErrors checks that each KVS error reaches the SDK as its typed
// error (the SDK reads X-Amzn-ErrorType / __type).
func TestAWSSDKErrors(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	good := awsClient(emu, emu.cfg.SecretAccessKey)
	bad := awsClient(emu, "wrong-secret")
	tests := []struct {
		name string
		call func() error
		want func(error) bool
	}{
		{"unknown channel", func() error {
			_, err := good.DescribeSignalingChannel(t.Context(), &kinesisvideo.DescribeSignalingChannelInput{ChannelName: aws.String("nope")})
			return err
		}, isErr[*types.ResourceNotFoundException]},
		{"duplicate name", func() error {
			_, err := good.CreateSignalingChannel(t.Context(), &kinesisvideo.CreateSignalingChannelInput{ChannelName: aws.String("cam")})
			return err
		}, isErr[*types.ResourceInUseException]},
		{"ttl out of range", func() error {
			_, err := good.CreateSignalingChannel(t.Context(), &kinesisvideo.CreateSignalingChannelInput{
				ChannelName:               aws.String("x"),
				SingleMasterConfiguration: &types.SingleMasterConfiguration{MessageTtlSeconds: aws.Int32(121)},
			})
			return err
		}, isErr[*types.InvalidArgumentException]},
		{"wrong secret", func() error {
			_, err := bad.DescribeSignalingChannel(t.Context(), &kinesisvideo.DescribeSignalingChannelInput{ChannelName: aws.String("cam")})
			return err
		}, isErr[*types.AccessDeniedException]},
		{"webrtc protocol", func() error {
			_, err := good.GetSignalingChannelEndpoint(t.Context(), &kinesisvideo.GetSignalingChannelEndpointInput{
				ChannelARN: aws.String(arn),
				SingleMasterChannelEndpointConfiguration: &types.SingleMasterChannelEndpointConfiguration{
					Protocols: []types.ChannelProtocol{types.ChannelProtocolWebrtc},
				},
			})
			return err
		}, isErr[*types.InvalidArgumentException]},
		{"version mismatch", func() error {
			_, err := good.DeleteSignalingChannel(t.Context(), &kinesisvideo.DeleteSignalingChannelInput{
				ChannelARN: aws.String(arn), CurrentVersion: aws.String("stale"),
			})
			return err
		}, isErr[*types.VersionMismatchException]},
		{"throttled", func() error {
			emu.Throttle(OpGetSignalingChannelEndpoint, 1)
			before := emu.Counters().Calls[OpGetSignalingChannelEndpoint]
			_, err := good.GetSignalingChannelEndpoint(t.Context(), &kinesisvideo.GetSignalingChannelEndpointInput{ChannelARN: aws.String(arn)})
			// Not retried by the SDK: exactly one call reached the emulator.
			if calls := emu.Counters().Calls[OpGetSignalingChannelEndpoint] - before; calls != 1 {
				t.Errorf("GetSignalingChannelEndpoint calls = %d, want 1 (no SDK retry)", calls)
			}
			return err
		}, isErr[*types.ClientLimitExceededException]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !tt.want(err) {
				t.Errorf("error = %v (%T), want the typed KVS error", err, err)
			}
		})
	}
	// The throttle was consumed: the next call succeeds.
	if _, err := good.GetSignalingChannelEndpoint(t.Context(), &kinesisvideo.GetSignalingChannelEndpointInput{ChannelARN: aws.String(arn)}); err != nil {
		t.Errorf("GetSignalingChannelEndpoint after the throttle = %v, want nil", err)
	}
}

// TestErrorWire pins the raw error format of KVS-PROTOCOL.md 1.5 and the
// JSON-number CreationTime.
func TestErrorWire(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	secret := emu.cfg.SecretAccessKey
	tests := []struct {
		name       string
		path       string
		body       any
		secret     string
		wantStatus int
		wantType   string
	}{
		{"not found", "/describeSignalingChannel", map[string]string{"ChannelName": "nope"}, secret, 404, codeNotFound},
		{"invalid", "/describeSignalingChannel", map[string]string{}, secret, 400, codeInvalidArgument},
		{"control plane signature", "/describeSignalingChannel", map[string]string{"ChannelName": "cam"}, "bad", 401, codeAccessDenied},
		{"signaling signature", "/v1/get-ice-server-config", map[string]string{"ChannelARN": arn}, "bad", 401, codeNotAuthorized},
		{"ice config unknown channel", "/v1/get-ice-server-config", map[string]string{"ChannelARN": arn + "x"}, secret, 404, codeNotFound},
		{"ice config bad service", "/v1/get-ice-server-config", map[string]string{"ChannelARN": arn, "Service": "STUN"}, secret, 400, codeInvalidArgument},
		{"unknown operation", "/listSignalingChannels", map[string]string{}, secret, 404, codeUnknownOperation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := signedPost(t, emu, tt.path, tt.body, tt.secret, time.Now())
			var got map[string]string
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if resp.StatusCode != tt.wantStatus || got["__type"] != tt.wantType ||
				resp.Header.Get("X-Amzn-ErrorType") != tt.wantType || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("POST %s = %d %v %s, want %d with __type and X-Amzn-ErrorType %s",
					tt.path, resp.StatusCode, resp.Header, body, tt.wantStatus, tt.wantType)
			}
			if got["Message"] == "" && got["message"] == "" {
				t.Errorf("POST %s body %s has no message", tt.path, body)
			}
		})
	}

	resp, body := signedPost(t, emu, "/describeSignalingChannel", map[string]string{"ChannelARN": arn}, secret, time.Now())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("describe = %d %s", resp.StatusCode, body)
	}
	var raw struct{ ChannelInfo map[string]json.RawMessage }
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if ct := string(raw.ChannelInfo["CreationTime"]); ct == "" || ct[0] == '"' {
		t.Errorf("CreationTime = %s, want a JSON number", ct)
	}
}

// isErr reports whether err is (or wraps) a T.
func isErr[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

type iceServerList struct {
	IceServerList []struct {
		Password string
		Ttl      int //nolint:revive // wire name
		Uris     []string
		Username string
	}
}

// TestIceServerConfigTURN is acceptance 1's second half: a signed POST to
// /v1/get-ice-server-config returns TURN servers, a pion/turn client
// allocates a relay with them over UDP and TCP, and an expired credential is
// refused.
func TestIceServerConfigTURN(t *testing.T) {
	clock := newFakeClock()
	emu := startEmu(t, func(c *Config) { c.Now = clock.Now })
	arn := mustChannel(t, emu, "cam", 0)

	getConfig := func() iceServerList {
		t.Helper()
		resp, body := signedPost(t, emu, "/v1/get-ice-server-config",
			map[string]string{"ChannelARN": arn, "ClientId": "viewer-1", "Service": "TURN"}, emu.cfg.SecretAccessKey, clock.Now())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("get-ice-server-config = %d %s", resp.StatusCode, body)
		}
		var l iceServerList
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := getConfig()
	if len(l.IceServerList) != 1 {
		t.Fatalf("IceServerList = %+v, want 1 server", l)
	}
	srv := l.IceServerList[0]
	if srv.Ttl != 300 {
		t.Errorf("Ttl = %d, want 300", srv.Ttl)
	}
	exp, rest, _ := strings.Cut(srv.Username, ":")
	if sec, err := strconv.ParseInt(exp, 10, 64); err != nil || sec != clock.Now().Add(5*time.Minute).Unix() || rest == "" {
		t.Errorf("Username = %q, want <expiry in 300 s>:<base64>", srv.Username)
	}
	udpAddr, tcpAddr := emu.TURNAddrs()
	wantURIs := []string{"turn:" + udpAddr + "?transport=udp", "turn:" + tcpAddr + "?transport=tcp"}
	if strings.Join(srv.Uris, " ") != strings.Join(wantURIs, " ") {
		t.Errorf("Uris = %v, want %v", srv.Uris, wantURIs)
	}

	tests := []struct {
		name      string
		transport string
		advance   time.Duration
		wantOK    bool
	}{
		{"udp", "udp", 0, true},
		{"tcp", "tcp", 0, true},
		{"udp expired", "udp", 301 * time.Second, false},
		{"tcp expired", "tcp", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(tt.advance)
			err := allocate(t, tt.transport, map[string]string{"udp": udpAddr, "tcp": tcpAddr}[tt.transport], srv.Username, srv.Password)
			if (err == nil) != tt.wantOK {
				t.Errorf("Allocate(%s) = %v, want ok=%v", tt.transport, err, tt.wantOK)
			}
		})
	}
	// Fresh credentials work again after the old ones expired.
	fresh := getConfig().IceServerList[0]
	if err := allocate(t, "udp", udpAddr, fresh.Username, fresh.Password); err != nil {
		t.Errorf("Allocate(fresh credentials) = %v, want nil", err)
	}
}

// allocate asks the TURN server at addr for a relay.
func allocate(t *testing.T, transport, addr, user, pass string) error {
	t.Helper()
	var conn net.PacketConn
	switch transport {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	default:
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	}
	defer conn.Close()
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr,
		TURNServerAddr: addr,
		Conn:           conn,
		Username:       user,
		Password:       pass,
		LoggerFactory:  logging.NewDefaultLoggerFactory(),
		RTO:            200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := client.Allocate()
	if err != nil {
		return err
	}
	if a, ok := relay.LocalAddr().(*net.UDPAddr); !ok || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("relay address = %v, want 127.0.0.1", relay.LocalAddr())
	}
	return relay.Close()
}
