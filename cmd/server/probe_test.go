package main

import (
	"bytes"
	"encoding/json"
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
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// The real binary with -dev: ProbeChannel on the demo camera reports its
// answer and video within a second; with the emulator's no-answer fault
// (its admin API through -dev's HTTP proxy) the probe ends at its deadline
// with DEADLINE_EXCEEDED PROBE_NO_ANSWER; both are counted.
func TestDevProbeChannel(t *testing.T) {
	const key = "probe-test-key-0123456789"
	p := startServerEnv(t, []string{"VS_API_KEYS=" + key}, "-dev")
	cc := dial(t, p.grpcAddr)
	waitServing(t, p, healthpb.NewHealthClient(cc))
	api := vspb.NewViewerSessionServiceClient(cc)
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+key)
	channel := &vspb.Channel{Name: DemoChannel}

	resp, err := api.ProbeChannel(ctx, &vspb.ProbeChannelRequest{Channel: channel})
	if err != nil {
		t.Fatalf("ProbeChannel(%s) = %v, want video", DemoChannel, err)
	}
	t.Logf("ProbeChannel: %v", resp)
	if resp.GetCodec() == "" || resp.GetIcePath().GetLocalType() == vspb.IceCandidateType_ICE_CANDIDATE_TYPE_UNSPECIFIED {
		t.Errorf("ProbeChannel: codec %q, ICE path %v; want both", resp.GetCodec(), resp.GetIcePath())
	}
	if e := resp.GetElapsed().AsDuration(); e <= 0 || e >= time.Second {
		t.Errorf("ProbeChannel took %v, want the answer and video within 1s", e)
	}

	httpGet := func(path string) []byte {
		t.Helper()
		r, err := http.Get("http://" + p.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, r.StatusCode, err)
		}
		return b
	}
	var list struct{ Channels []kvsemu.ChannelState }
	if err := json.Unmarshal(httpGet("/dev/emulator/channels"), &list); err != nil || len(list.Channels) == 0 {
		t.Fatalf("emulator channels: %v, %v", list, err)
	}
	fault, _ := json.Marshal(kvsemu.FaultRequest{ChannelARN: list.Channels[0].ARN, Fault: "no-answer"})
	r, err := http.Post("http://"+p.httpAddr+"/dev/emulator/faults", "application/json", bytes.NewReader(fault))
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("POST the no-answer fault: %v %v", r, err)
	}
	r.Body.Close()

	start := time.Now()
	_, err = api.ProbeChannel(ctx, &vspb.ProbeChannelRequest{Channel: channel, Deadline: durationpb.New(time.Second)})
	took := time.Since(start)
	st := status.Convert(err)
	var reason string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = info.GetReason()
		}
	}
	t.Logf("ProbeChannel with the no-answer fault = %v (after %v)", err, took)
	if st.Code() != codes.DeadlineExceeded || reason != "PROBE_NO_ANSWER" || took < time.Second {
		t.Errorf("ProbeChannel with the no-answer fault = %v (%s) after %v, want DEADLINE_EXCEEDED PROBE_NO_ANSWER at its 1s deadline", err, reason, took)
	}

	metrics := string(httpGet("/metrics"))
	for _, want := range []string{`vss_probes_total{outcome="ok"} 1`, `vss_probes_total{outcome="no_answer"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
