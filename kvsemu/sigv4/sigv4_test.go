package sigv4

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsv4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The KVS JS SDK test vectors (SigV4RequestSigner.spec.ts, KVS-PROTOCOL.md
// section 2.1): fixed clock, endpoint and credentials.
var (
	jsDate  = time.Date(2019, 12, 1, 0, 0, 0, 0, time.UTC)
	jsCreds = Credentials{AccessKeyID: "AKIA4F7WJQR7FMMWMNXI", SecretAccessKey: "FakeSecretKey", SessionToken: "FakeSessionToken"}
)

const jsPrefix = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=299"

func jsVerifier(now time.Time) Verifier {
	return Verifier{
		Region:  "us-west-2",
		Service: "kinesisvideo",
		Lookup: func(id string) (string, bool) {
			return jsCreds.SecretAccessKey, id == jsCreds.AccessKeyID
		},
		Now: func() time.Time { return now },
	}
}

func TestPresignURLJSVectors(t *testing.T) {
	noToken := jsCreds
	noToken.SessionToken = ""
	tests := []struct {
		name  string
		give  string
		creds Credentials
		want  string
	}{
		{
			name:  "session token",
			give:  "wss://kvs.awsamazon.com?X-Amz-TestParam=test-param-value",
			creds: jsCreds,
			want: "wss://kvs.awsamazon.com/?" + jsPrefix + "&X-Amz-Security-Token=FakeSessionToken" +
				"&X-Amz-Signature=fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92" +
				"&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
		},
		{
			name:  "no session token",
			give:  "wss://kvs.awsamazon.com?X-Amz-TestParam=test-param-value",
			creds: noToken,
			want: "wss://kvs.awsamazon.com/?" + jsPrefix +
				"&X-Amz-Signature=be1e78950d956a8a9a1997417099ddbd7455619f3d08c4ad20e1e272179ca695" +
				"&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
		},
		{
			name:  "path",
			give:  "wss://kvs.awsamazon.com/path/path/path?X-Amz-TestParam=test-param-value",
			creds: jsCreds,
			want: "wss://kvs.awsamazon.com/path/path/path?" + jsPrefix + "&X-Amz-Security-Token=FakeSessionToken" +
				"&X-Amz-Signature=0bf3df6ca23d8d82f688e8dbfb90d69e74843d40038541b1721c545eef7612a4" +
				"&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PresignURL(tt.give, tt.creds, "us-west-2", "kinesisvideo", jsDate, 0)
			if err != nil {
				t.Fatalf("PresignURL(%q) error: %v", tt.give, err)
			}
			if got != tt.want {
				t.Errorf("PresignURL(%q) =\n%s\nwant\n%s", tt.give, got, tt.want)
			}
			// The verifier accepts the vector itself (not only our output).
			if err := jsVerifier(jsDate.Add(time.Minute)).VerifyURL(tt.want); err != nil {
				t.Errorf("VerifyURL(vector) = %v, want nil", err)
			}
		})
	}
}

func TestVerifyURLRefuses(t *testing.T) {
	valid := "wss://kvs.awsamazon.com/?" + jsPrefix + "&X-Amz-Security-Token=FakeSessionToken" +
		"&X-Amz-Signature=fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92" +
		"&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value"
	inWindow := jsDate.Add(time.Minute)
	tests := []struct {
		name string
		give string
		now  time.Time
		want error
	}{
		{"tampered param", strings.Replace(valid, "test-param-value", "test-param-valuf", 1), inWindow, ErrMismatch},
		{"tampered signature", strings.Replace(valid, "fc2680", "fc2681", 1), inWindow, ErrMismatch},
		{"token removed", strings.Replace(valid, "&X-Amz-Security-Token=FakeSessionToken", "", 1), inWindow, ErrMismatch},
		{"other host", strings.Replace(valid, "kvs.awsamazon.com", "kvs.example.com", 1), inWindow, ErrMismatch},
		{"expired", valid, jsDate.Add(300 * time.Second), ErrExpired},
		{"not yet valid", valid, jsDate.Add(-10 * time.Minute), ErrNotYetValid},
		{"unknown key", strings.Replace(valid, "AKIA4F7WJQR7FMMWMNXI", "AKIAOTHER", 1), inWindow, ErrUnknownKey},
		{"other region", strings.Replace(valid, "us-west-2", "eu-west-1", 1), inWindow, ErrScope},
		{"no auth", "wss://kvs.awsamazon.com/?X-Amz-ChannelARN=x", inWindow, ErrMissing},
		{"bad expires", strings.Replace(valid, "X-Amz-Expires=299", "X-Amz-Expires=0", 1), inWindow, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := jsVerifier(tt.now).VerifyURL(tt.give)
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifyURL() = %v, want %v", err, tt.want)
			}
		})
	}
	if err := jsVerifier(jsDate.Add(298 * time.Second)).VerifyURL(valid); err != nil {
		t.Errorf("VerifyURL(valid, 298 s later) = %v, want nil", err)
	}
}

// TestVerifyAWSPresign checks that a URL presigned by aws-sdk-go-v2's signer
// (with X-Amz-Expires added by the caller, as KVS-PROTOCOL.md 2.1 notes) is
// accepted.
func TestVerifyAWSPresign(t *testing.T) {
	now := time.Now().UTC()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		"wss://127.0.0.1:4567/?X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A1%3Achannel%2Fc%2F1&X-Amz-ClientId=v1&X-Amz-Expires=299", nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := awsv4.NewSigner().PresignHTTP(t.Context(), aws.Credentials{
		AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "tok/en+=",
	}, req, emptySHA256, "kinesisvideo", "us-west-2", now)
	if err != nil {
		t.Fatal(err)
	}
	v := Verifier{Region: "us-west-2", Service: "kinesisvideo", Lookup: func(id string) (string, bool) { return "secret", id == "AKID" }}
	if err := v.VerifyURL(signed); err != nil {
		t.Errorf("VerifyURL(aws presigned) = %v, want nil", err)
	}
	ours, err := PresignURL(req.URL.String(), Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "tok/en+="},
		"us-west-2", "kinesisvideo", now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyURL(ours); err != nil {
		t.Errorf("VerifyURL(PresignURL) = %v, want nil", err)
	}
}

// TestVerifyRequest signs real requests with aws-sdk-go-v2's header signer and
// verifies them on a real HTTP server.
func TestVerifyRequest(t *testing.T) {
	var clock time.Time
	v := Verifier{
		Region: "us-west-2", Service: "kinesisvideo",
		Lookup: func(id string) (string, bool) { return "secret", id == "AKID" },
		Now:    func() time.Time { return clock },
	}
	results := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		results <- v.VerifyRequest(r, body)
	}))
	defer srv.Close()

	signedAt := time.Now().UTC().Truncate(time.Second)
	body := []byte(`{"ChannelName":"demo"}`)
	tests := []struct {
		name   string
		now    time.Time
		send   []byte // the body sent; body is what was signed
		tamper func(r *http.Request)
		want   error
	}{
		{"valid", signedAt, body, nil, nil},
		{"body changed", signedAt, []byte(`{"ChannelName":"dema"}`), nil, ErrMismatch},
		{"signed header changed", signedAt, body, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, ErrMismatch},
		{"unsigned header added", signedAt, body, func(r *http.Request) { r.Header.Set("X-Extra", "1") }, nil},
		{"too old", signedAt.Add(6 * time.Minute), body, nil, ErrExpired},
		{"no auth", signedAt, body, func(r *http.Request) { r.Header.Del("Authorization") }, ErrMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock = tt.now
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/describeSignalingChannel", bytes.NewReader(tt.send))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			err = awsv4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"},
				req, hashHex(body), "kinesisvideo", "us-west-2", signedAt)
			if err != nil {
				t.Fatal(err)
			}
			if tt.tamper != nil {
				tt.tamper(req)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := <-results; !errors.Is(got, tt.want) || (tt.want == nil && got != nil) {
				t.Errorf("VerifyRequest() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCredentialsStringRedacts(t *testing.T) {
	got := jsCreds.String()
	if strings.Contains(got, "FakeSecretKey") || strings.Contains(got, "FakeSessionToken") {
		t.Errorf("Credentials.String() = %q, leaks a secret", got)
	}
}
