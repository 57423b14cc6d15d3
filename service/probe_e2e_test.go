package service_test

import (
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/internal/stacktest"
	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// errorInfo returns err's status code and ErrorInfo (nil when none).
func errorInfo(err error) (codes.Code, *errdetails.ErrorInfo, bool) {
	st := status.Convert(err)
	var info *errdetails.ErrorInfo
	retry := false
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RetryInfo:
			retry = true
		}
	}
	return st.Code(), info, retry
}

// ProbeChannel on the stack's camera (the -dev camera's mode, c-sample)
// reports the answer and the first video within a second.
func TestProbeChannelReportsVideo(t *testing.T) {
	st := stacktest.Start(t, stacktest.Options{})
	resp, err := st.API.ProbeChannel(stacktest.Backend(t.Context()), &vspb.ProbeChannelRequest{Channel: &vspb.Channel{Arn: st.ARN}})
	if err != nil {
		t.Fatalf("ProbeChannel = %v, want video", err)
	}
	t.Logf("ProbeChannel: %v", resp)
	if resp.GetClientId() == "" || resp.GetCodec() == "" {
		t.Errorf("ProbeChannel: clientId %q, codec %q; want both", resp.GetClientId(), resp.GetCodec())
	}
	path := resp.GetIcePath()
	if path.GetLocalType() == vspb.IceCandidateType_ICE_CANDIDATE_TYPE_UNSPECIFIED ||
		path.GetRemoteType() == vspb.IceCandidateType_ICE_CANDIDATE_TYPE_UNSPECIFIED || path.GetProtocol() == "" {
		t.Errorf("ProbeChannel: ICE path %v, want the pair's types and protocol", path)
	}
	answer, first, elapsed := resp.GetAnswerLatency().AsDuration(), resp.GetFirstPacketLatency().AsDuration(), resp.GetElapsed().AsDuration()
	if answer <= 0 || first < answer || elapsed < first {
		t.Errorf("ProbeChannel: answer %v, first packet %v, elapsed %v; want 0 < answer <= first packet <= elapsed", answer, first, elapsed)
	}
	if elapsed >= time.Second {
		t.Errorf("ProbeChannel took %v, want the answer and video within 1s", elapsed)
	}
}

// With the camera's no-answer fault the probe ends at its deadline with
// DEADLINE_EXCEEDED PROBE_NO_ANSWER, its clientId in the metadata.
func TestProbeChannelNoAnswer(t *testing.T) {
	st := stacktest.Start(t, stacktest.Options{})
	if err := st.Emu.SetCameraFault(st.ARN, camera.Fault{NoAnswer: true}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := st.API.ProbeChannel(stacktest.Backend(t.Context()), &vspb.ProbeChannelRequest{
		Channel: &vspb.Channel{Arn: st.ARN}, Deadline: durationpb.New(time.Second),
	})
	took := time.Since(start)
	code, info, _ := errorInfo(err)
	t.Logf("ProbeChannel = %v, metadata %v (after %v)", err, info.GetMetadata(), took)
	if code != codes.DeadlineExceeded || info.GetReason() != "PROBE_NO_ANSWER" {
		t.Fatalf("ProbeChannel = %v, want DEADLINE_EXCEEDED PROBE_NO_ANSWER", err)
	}
	if info.GetMetadata()["client_id"] == "" || info.GetMetadata()["deadline_ms"] != "1000" {
		t.Errorf("ErrorInfo metadata %v, want client_id and deadline_ms 1000", info.GetMetadata())
	}
	if took < time.Second || took > 3*time.Second {
		t.Errorf("ProbeChannel took %v, want its deadline, 1s", took)
	}
}

// On a full channel the probe is refused CHANNEL_FULL; probes past the
// channel's rate are refused RATE_LIMITED with RetryInfo.
func TestProbeChannelFullAndRateLimited(t *testing.T) {
	st := stacktest.Start(t, stacktest.Options{})
	for _, v := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		st.Create(t, "viewer-"+v, nil)
	}
	req := &vspb.ProbeChannelRequest{Channel: &vspb.Channel{Arn: st.ARN}}
	burst := 3 // service.DefaultLimits().ProbeBurst
	for i := range burst {
		_, err := st.API.ProbeChannel(stacktest.Backend(t.Context()), req)
		if code, info, retry := errorInfo(err); code != codes.ResourceExhausted || info.GetReason() != "CHANNEL_FULL" || !retry {
			t.Fatalf("ProbeChannel %d on a full channel = %v, want RESOURCE_EXHAUSTED CHANNEL_FULL with RetryInfo", i+1, err)
		}
	}
	_, err := st.API.ProbeChannel(stacktest.Backend(t.Context()), req)
	if code, info, retry := errorInfo(err); code != codes.ResourceExhausted || info.GetReason() != "RATE_LIMITED" || !retry {
		t.Fatalf("ProbeChannel past the burst = %v, want RESOURCE_EXHAUSTED RATE_LIMITED with RetryInfo", err)
	}
}

func TestProbeChannelRefusals(t *testing.T) {
	st := stacktest.Start(t, stacktest.Options{})
	tests := []struct {
		name     string
		backend  bool
		give     *vspb.ProbeChannelRequest
		wantCode codes.Code
	}{
		{"no credentials", false, &vspb.ProbeChannelRequest{Channel: &vspb.Channel{Arn: st.ARN}}, codes.Unauthenticated},
		{"no channel", true, &vspb.ProbeChannelRequest{}, codes.InvalidArgument},
		{"empty channel", true, &vspb.ProbeChannelRequest{Channel: &vspb.Channel{}}, codes.InvalidArgument},
		{"deadline too short", true, &vspb.ProbeChannelRequest{Channel: &vspb.Channel{Arn: st.ARN}, Deadline: durationpb.New(time.Millisecond)}, codes.InvalidArgument},
		{"deadline too long", true, &vspb.ProbeChannelRequest{Channel: &vspb.Channel{Arn: st.ARN}, Deadline: durationpb.New(time.Hour)}, codes.InvalidArgument},
		{"unknown channel", true, &vspb.ProbeChannelRequest{Channel: &vspb.Channel{Name: "no-such-channel"}}, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.backend {
				ctx = stacktest.Backend(ctx)
			}
			_, err := st.API.ProbeChannel(ctx, tt.give)
			if code, info, _ := errorInfo(err); code != tt.wantCode || info == nil {
				t.Errorf("ProbeChannel(%v) = %v, want %v with ErrorInfo", tt.give, err, tt.wantCode)
			}
		})
	}
}
