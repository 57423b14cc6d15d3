package kvs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestValidRegion(t *testing.T) {
	for s, want := range map[string]bool{
		"us-west-2": true, "us-gov-east-1": true, "cn-north-1": true, "ap-southeast-5": true, "eu-central-2": true,
		"": false, "us-west": false, "US-WEST-2": false, "us-west-2\r\n": false, "mars": false, "us--2": false,
		"us-west-2 ": false, strings.Repeat("a", 40) + "-b-1": false,
	} {
		if got := validRegion(s); got != want {
			t.Errorf("validRegion(%q) = %v, want %v", s, got, want)
		}
	}
}

// Issue 15, defect 7: a malformed region and missing credentials are
// configuration problems, each with its own error, never echoed raw.
func TestResolveChannelMisconfigured(t *testing.T) {
	ok := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil
	})
	c, err := New(aws.Config{Region: "us-west-2", Credentials: ok}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ResolveChannel(t.Context(), ChannelRef{Name: "cam", Region: "us-west-2\r\nX-Injected: yes"})
	if !errors.Is(err, ErrInvalidRegion) || strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("ResolveChannel with a CR/LF region = %q, want ErrInvalidRegion without raw CR/LF", err)
	}
	_, err = c.ResolveChannel(t.Context(), ChannelRef{ARN: "arn:aws:kinesisvideo:zz:1:channel/c/1"})
	if !errors.Is(err, ErrInvalidRegion) {
		t.Errorf("ResolveChannel with an ARN in region zz = %v, want ErrInvalidRegion", err)
	}

	none := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("no credentials in the chain")
	})
	c, err = New(aws.Config{Region: "us-west-2", Credentials: none}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResolveChannel(t.Context(), ChannelRef{Name: "cam"}); !errors.Is(err, ErrCredentials) || errors.Is(err, ErrUnavailable) {
		t.Errorf("ResolveChannel without credentials = %v, want ErrCredentials (not an outage)", err)
	}
}
