package kvs

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestPresignURLJSVectors reproduces the signed URLs of the JS SDK's
// SigV4RequestSigner.spec.ts (KVS-PROTOCOL.md 2.1) byte for byte.
func TestPresignURLJSVectors(t *testing.T) {
	const prefix = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z"
	tests := []struct {
		name    string
		give    string // endpoint
		token   string
		params  url.Values
		want    string
		wantSig string
	}{
		{
			name:    "session token",
			give:    "wss://kvs.awsamazon.com",
			token:   "FakeSessionToken",
			params:  url.Values{"X-Amz-TestParam": {"test-param-value"}},
			want:    "wss://kvs.awsamazon.com/?" + prefix + "&X-Amz-Expires=299&X-Amz-Security-Token=FakeSessionToken&X-Amz-Signature=fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
			wantSig: "fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92",
		},
		{
			name:    "no session token",
			give:    "wss://kvs.awsamazon.com",
			params:  url.Values{"X-Amz-TestParam": {"test-param-value"}},
			want:    "wss://kvs.awsamazon.com/?" + prefix + "&X-Amz-Expires=299&X-Amz-Signature=be1e78950d956a8a9a1997417099ddbd7455619f3d08c4ad20e1e272179ca695&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
			wantSig: "be1e78950d956a8a9a1997417099ddbd7455619f3d08c4ad20e1e272179ca695",
		},
		{
			name:    "path",
			give:    "wss://kvs.awsamazon.com/path/path/path",
			token:   "FakeSessionToken",
			params:  url.Values{"X-Amz-TestParam": {"test-param-value"}},
			want:    "wss://kvs.awsamazon.com/path/path/path?" + prefix + "&X-Amz-Expires=299&X-Amz-Security-Token=FakeSessionToken&X-Amz-Signature=0bf3df6ca23d8d82f688e8dbfb90d69e74843d40038541b1721c545eef7612a4&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
			wantSig: "0bf3df6ca23d8d82f688e8dbfb90d69e74843d40038541b1721c545eef7612a4",
		},
		{
			name:    "expires override",
			give:    "wss://kvs.awsamazon.com",
			token:   "FakeSessionToken",
			params:  url.Values{"X-Amz-TestParam": {"test-param-value"}, "X-Amz-Expires": {"86400"}},
			want:    "wss://kvs.awsamazon.com/?" + prefix + "&X-Amz-Expires=86400&X-Amz-Security-Token=FakeSessionToken&X-Amz-Signature=b62a078631a8f1e31ad09bce25d251611a22b65eac8836f6d700cee50a04e9e1&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value",
			wantSig: "b62a078631a8f1e31ad09bce25d251611a22b65eac8836f6d700cee50a04e9e1",
		},
	}
	at := time.Date(2019, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds := aws.Credentials{AccessKeyID: "AKIA4F7WJQR7FMMWMNXI", SecretAccessKey: "FakeSecretKey", SessionToken: tt.token}
			got, err := presignURL(t.Context(), v4.NewSigner(), creds, tt.give, "us-west-2", tt.params, 299*time.Second, at)
			if err != nil {
				t.Fatalf("presignURL(%q) error: %v", tt.give, err)
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("url.Parse(%q): %v", got, err)
			}
			if sig := u.Query().Get("X-Amz-Signature"); sig != tt.wantSig {
				t.Errorf("presignURL(%q) signature = %s, want %s", tt.give, sig, tt.wantSig)
			}
			if got != tt.want {
				t.Errorf("presignURL(%q) =\n%s\nwant\n%s", tt.give, got, tt.want)
			}
		})
	}
}

func TestPresignURLRejects(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{"https scheme", "https://kvs.awsamazon.com"},
		{"query", "wss://kvs.awsamazon.com?a=b"},
		{"no host", "wss:///path"},
	}
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := presignURL(t.Context(), v4.NewSigner(), creds, tt.give, "us-west-2", nil, time.Minute, time.Now())
			if err == nil {
				t.Fatalf("presignURL(%q) = %q, want an error", tt.give, got)
			}
		})
	}
}

// TestPresignURLDoesNotLeakSecret checks that the secret key never appears in
// a signed URL (the session token does, by protocol).
func TestPresignURLDoesNotLeakSecret(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "TopSecretValue", SessionToken: "tok"}
	got, err := presignURL(t.Context(), v4.NewSigner(), creds, "wss://h.example", "eu-west-1",
		url.Values{"X-Amz-ChannelARN": {"arn:aws:kinesisvideo:eu-west-1:123:channel/c/1"}, "X-Amz-ClientId": {"viewer-1"}}, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "TopSecretValue") {
		t.Errorf("presignURL = %q, contains the secret key", got)
	}
	if !strings.Contains(got, "X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aeu-west-1%3A123%3Achannel%2Fc%2F1") {
		t.Errorf("presignURL = %q, want the channel ARN encodeURIComponent-style", got)
	}
}
