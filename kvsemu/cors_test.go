package kvsemu

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// browserHeaders are the headers the AWS SDK for JavaScript v3 puts on a
// KVS call from a page, which its preflight lists.
const browserHeaders = "amz-sdk-invocation-id,amz-sdk-request,authorization,content-type,x-amz-content-sha256," +
	"x-amz-date,x-amz-security-token,x-amz-user-agent"

// TestCORSPreflight: an unsigned OPTIONS preflight on every control-plane
// path is allowed the way a browser checks it (Fetch standard, CORS-preflight
// fetch): status ok, the origin, POST, every requested header, a max age.
func TestCORSPreflight(t *testing.T) {
	emu := startEmu(t, nil)
	client := emu.HTTPClient()
	defer client.CloseIdleConnections()
	const origin = "http://localhost:3001"
	for _, op := range controlOps() {
		t.Run(op.path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, emu.Endpoint()+op.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", browserHeaders+",x-custom-thing")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				t.Fatalf("OPTIONS %s = %d, want 2xx", op.path, resp.StatusCode)
			}
			h := resp.Header
			if got := h.Get("Access-Control-Allow-Origin"); got != origin && got != "*" {
				t.Errorf("Allow-Origin = %q, want %q or *", got, origin)
			}
			if !listHas(h.Values("Access-Control-Allow-Methods"), "POST") {
				t.Errorf("Allow-Methods = %q, want POST in it", h.Values("Access-Control-Allow-Methods"))
			}
			allowed := h.Values("Access-Control-Allow-Headers")
			for name := range strings.SplitSeq(browserHeaders+",x-custom-thing", ",") {
				if !listHas(allowed, name) {
					t.Errorf("Allow-Headers = %q, want %s in it", allowed, name)
				}
			}
			if h.Get("Access-Control-Max-Age") == "" {
				t.Error("no Access-Control-Max-Age")
			}
		})
	}
	calls := emu.Counters().Calls
	for _, op := range controlOps() {
		if calls[op.name] != 0 {
			t.Errorf("Counters().Calls = %v after preflights only, want no operation counted", calls)
			break
		}
	}
}

// TestCORSActual: the response to a signed POST from a page, a success and
// an error alike, lets the page read it and its request id and error type.
func TestCORSActual(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	const origin = "https://console.example"
	tests := []struct {
		name       string
		secret     string
		wantStatus int
	}{
		{name: "ok", secret: emu.cfg.SecretAccessKey, wantStatus: http.StatusOK},
		{name: "bad signature", secret: "wrong", wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := signedPostWith(t, emu, "/describeSignalingChannel", map[string]string{"ChannelARN": arn},
				tt.secret, time.Now(), http.Header{"Origin": {origin}})
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("POST = %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			h := resp.Header
			if got := h.Get("Access-Control-Allow-Origin"); got != origin {
				t.Errorf("Allow-Origin = %q, want %q", got, origin)
			}
			exposed := h.Values("Access-Control-Expose-Headers")
			for _, name := range []string{"x-amzn-requestid", "x-amzn-errortype"} {
				if !listHas(exposed, name) {
					t.Errorf("Expose-Headers = %q, want %s in it", exposed, name)
				}
			}
		})
	}
}

// listHas reports whether the comma-separated header values hold name
// (case-insensitive), or "*".
func listHas(values []string, name string) bool {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "*" || strings.EqualFold(item, name) {
				return true
			}
		}
	}
	return false
}
