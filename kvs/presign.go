package kvs

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// emptyPayloadHash is the hex SHA-256 of the empty string: the payload hash
// of a presigned GET.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// signingService is the SigV4 signing name of both KVS APIs.
const signingService = "kinesisvideo"

// presignURL signs a KVS signaling WebSocket URL with SigV4 query
// authentication, as the JS SDK's SigV4RequestSigner.getSignedURL does: GET,
// service kinesisvideo, only the host header signed, the empty payload hash,
// X-Amz-Security-Token (when creds carry a session token) inside the
// canonical query, and X-Amz-Expires set from expires unless params already
// carry one. The scheme is not part of the signature. The returned URL lists
// its query parameters sorted by name, X-Amz-Signature among them, which is
// the JS SDK's exact output.
func presignURL(ctx context.Context, signer *v4.Signer, creds aws.Credentials, endpoint, region string, params url.Values, expires time.Duration, at time.Time) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("kvs: %w: signaling endpoint: %w", ErrInvalidArgument, err)
	}
	if u.Scheme != "wss" || u.Host == "" {
		return "", fmt.Errorf("kvs: %w: signaling endpoint %q is not a wss:// URL", ErrInvalidArgument, endpoint)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return "", fmt.Errorf("kvs: %w: signaling endpoint %q has a query", ErrInvalidArgument, endpoint)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	q := url.Values{}
	for k, vs := range params {
		q[k] = append([]string(nil), vs...)
	}
	if q.Get("X-Amz-Expires") == "" {
		q.Set("X-Amz-Expires", strconv.FormatInt(int64(expires/time.Second), 10))
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("kvs: %w: signaling URL: %w", ErrInvalidArgument, err)
	}
	signed, _, err := signer.PresignHTTP(ctx, creds, req, emptyPayloadHash, signingService, region, at)
	if err != nil {
		return "", fmt.Errorf("kvs: presign: %w", err)
	}
	return sortQuery(signed)
}

// sortQuery reorders the already-encoded query parameters of rawURL by name
// without re-encoding them.
func sortQuery(rawURL string) (string, error) {
	base, query, ok := strings.Cut(rawURL, "?")
	if !ok {
		return rawURL, nil
	}
	parts := strings.Split(query, "&")
	sort.SliceStable(parts, func(i, j int) bool {
		ki, _, _ := strings.Cut(parts[i], "=")
		kj, _, _ := strings.Cut(parts[j], "=")
		return ki < kj
	})
	return base + "?" + strings.Join(parts, "&"), nil
}
