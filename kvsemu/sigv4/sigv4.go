// Package sigv4 is the KVS emulator's own AWS Signature Version 4
// implementation: query presigning of signaling WebSocket URLs (the way the
// KVS JS SDK's SigV4RequestSigner does it) and verification of both presigned
// URLs and header-signed REST requests.
//
// It deliberately shares no code with aws-sdk-go-v2 or the service's kvs
// package, so the emulator catches a misreading of the protocol in either.
// The algorithm is described in KVS-PROTOCOL.md section 2.1 and in
// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm this package speaks.
const Algorithm = "AWS4-HMAC-SHA256"

// DefaultExpires is the X-Amz-Expires the KVS JS SDK puts on signaling URLs.
const DefaultExpires = 299 * time.Second

// MaxExpires is the longest X-Amz-Expires SigV4 accepts (7 days).
const MaxExpires = 604800 * time.Second

// DefaultSkew is how far a signature's date may lie in the future (and, for
// header-signed requests, in the past) before it is refused.
const DefaultSkew = 5 * time.Minute

// Query parameter and header names.
const (
	paramAlgorithm     = "X-Amz-Algorithm"
	paramCredential    = "X-Amz-Credential"
	paramDate          = "X-Amz-Date"
	paramExpires       = "X-Amz-Expires"
	paramSecurityToken = "X-Amz-Security-Token"
	paramSignedHeaders = "X-Amz-SignedHeaders"
	paramSignature     = "X-Amz-Signature"

	headerContentSHA256 = "X-Amz-Content-Sha256"
	unsignedPayload     = "UNSIGNED-PAYLOAD"

	timeFormat  = "20060102T150405Z"
	shortFormat = "20060102"
)

// emptySHA256 is the hex SHA-256 of the empty string: the payload hash of
// every presigned GET.
var emptySHA256 = hashHex(nil)

// Credentials are AWS credentials. SessionToken is empty for long-term keys.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// String hides the secret and the token so Credentials are safe to log.
func (c Credentials) String() string {
	return "Credentials{AccessKeyID:" + c.AccessKeyID + ", SecretAccessKey:<redacted>}"
}

// PresignURL returns rawURL signed with SigV4 query authentication, as the KVS
// JS SDK signs its signaling WebSocket URLs: method GET, the host header as
// the only signed header, the SHA-256 of the empty payload, the session token
// (if any) inside the canonical query, and every query parameter sorted and
// RFC 3986 encoded. Query parameters already in rawURL (X-Amz-ChannelARN,
// X-Amz-ClientId, ...) are signed too. expires 0 means DefaultExpires unless
// rawURL already carries X-Amz-Expires. The scheme is not signed, so ws, wss,
// http and https URLs all work. An empty path signs as "/".
func PresignURL(rawURL string, creds Credentials, region, service string, t time.Time, expires time.Duration) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("presign: %w", err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("presign %q: %w: no host", rawURL, ErrMalformed)
	}
	if expires < 0 || expires > MaxExpires {
		return "", fmt.Errorf("presign: %w: expires %v out of range", ErrMalformed, expires)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	t = t.UTC()
	scope := credentialScope(t, region, service)
	q := u.Query()
	q.Set(paramAlgorithm, Algorithm)
	q.Set(paramCredential, creds.AccessKeyID+"/"+scope)
	q.Set(paramDate, t.Format(timeFormat))
	switch {
	case expires > 0:
		q.Set(paramExpires, strconv.FormatInt(int64(expires/time.Second), 10))
	case q.Get(paramExpires) == "":
		q.Set(paramExpires, strconv.FormatInt(int64(DefaultExpires/time.Second), 10))
	}
	if creds.SessionToken != "" {
		q.Set(paramSecurityToken, creds.SessionToken)
	}
	q.Set(paramSignedHeaders, "host")
	q.Del(paramSignature)

	creq := canonicalRequest(http.MethodGet, canonicalURI(u), canonicalQuery(q), "host:"+u.Host+"\n", "host", emptySHA256)
	sig := signature(creds.SecretAccessKey, t, region, service, creq)
	q.Set(paramSignature, sig)
	u.RawQuery = canonicalQuery(q)
	return u.String(), nil
}

// Verifier checks SigV4 signatures against a set of known credentials. The
// zero value refuses everything; set Lookup. A Verifier is safe for concurrent
// use if Lookup and Now are.
type Verifier struct {
	// Region and Service are the only scope accepted, e.g. "us-west-2" and
	// "kinesisvideo".
	Region  string
	Service string
	// Lookup returns the secret access key for an access key id.
	Lookup func(accessKeyID string) (secret string, ok bool)
	// Now is the verifier's clock. Default time.Now.
	Now func() time.Time
	// Skew is the allowed clock skew. Default DefaultSkew.
	Skew time.Duration
}

func (v Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v Verifier) skew() time.Duration {
	if v.Skew > 0 {
		return v.Skew
	}
	return DefaultSkew
}

// VerifyURL verifies a presigned GET URL whose host header is the URL's own
// host (the form of the JS SDK test vectors).
func (v Verifier) VerifyURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	h := http.Header{}
	return v.verifyQuery(http.MethodGet, u, u.Host, h)
}

// VerifyPresigned verifies the query authentication of an incoming request
// (a signaling WebSocket upgrade). It returns an error wrapping ErrMissing,
// ErrMalformed, ErrUnknownKey, ErrScope, ErrExpired, ErrNotYetValid or
// ErrMismatch.
func (v Verifier) VerifyPresigned(r *http.Request) error {
	return v.verifyQuery(r.Method, r.URL, r.Host, r.Header)
}

func (v Verifier) verifyQuery(method string, u *url.URL, host string, h http.Header) error {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: query: %w", ErrMalformed, err)
	}
	sig := q.Get(paramSignature)
	if sig == "" && q.Get(paramCredential) == "" {
		return ErrMissing
	}
	if alg := q.Get(paramAlgorithm); alg != Algorithm {
		return fmt.Errorf("%w: algorithm %q", ErrMalformed, alg)
	}
	t, err := time.Parse(timeFormat, q.Get(paramDate))
	if err != nil {
		return fmt.Errorf("%w: %s", ErrMalformed, paramDate)
	}
	exp, err := strconv.ParseInt(q.Get(paramExpires), 10, 64)
	if err != nil || exp < 1 || exp > int64(MaxExpires/time.Second) {
		return fmt.Errorf("%w: %s %q", ErrMalformed, paramExpires, q.Get(paramExpires))
	}
	secret, err := v.checkCredential(q.Get(paramCredential), t)
	if err != nil {
		return err
	}
	now := v.now()
	if t.After(now.Add(v.skew())) {
		return fmt.Errorf("%w: dated %s", ErrNotYetValid, t.Format(timeFormat))
	}
	if now.After(t.Add(time.Duration(exp) * time.Second)) {
		return fmt.Errorf("%w: dated %s, expires after %ds", ErrExpired, t.Format(timeFormat), exp)
	}
	signed := strings.Split(q.Get(paramSignedHeaders), ";")
	headers, err := canonicalHeaders(signed, host, h, -1)
	if err != nil {
		return err
	}
	q.Del(paramSignature)
	creq := canonicalRequest(method, canonicalURI(u), canonicalQuery(q), headers, strings.Join(signed, ";"), emptySHA256)
	want := signature(secret, t, v.Region, v.Service, creq)
	if !hmac.Equal([]byte(strings.ToLower(sig)), []byte(want)) {
		return ErrMismatch
	}
	return nil
}

// VerifyRequest verifies a header-signed request (Authorization header) whose
// body has already been read into body. It returns an error wrapping
// ErrMissing, ErrMalformed, ErrUnknownKey, ErrScope, ErrExpired,
// ErrNotYetValid or ErrMismatch.
func (v Verifier) VerifyRequest(r *http.Request, body []byte) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if r.URL.Query().Get(paramSignature) != "" {
			return v.VerifyPresigned(r)
		}
		return ErrMissing
	}
	rest, ok := strings.CutPrefix(auth, Algorithm+" ")
	if !ok {
		return fmt.Errorf("%w: authorization scheme", ErrMalformed)
	}
	var cred, signedList, sig string
	for part := range strings.SplitSeq(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = val
		case "SignedHeaders":
			signedList = val
		case "Signature":
			sig = val
		}
	}
	if cred == "" || signedList == "" || sig == "" {
		return fmt.Errorf("%w: authorization header", ErrMalformed)
	}
	date := r.Header.Get("X-Amz-Date")
	if date == "" {
		date = r.Header.Get("Date")
	}
	t, err := time.Parse(timeFormat, date)
	if err != nil {
		return fmt.Errorf("%w: X-Amz-Date", ErrMalformed)
	}
	secret, err := v.checkCredential(cred, t)
	if err != nil {
		return err
	}
	now := v.now()
	if t.After(now.Add(v.skew())) {
		return fmt.Errorf("%w: dated %s", ErrNotYetValid, t.Format(timeFormat))
	}
	if t.Before(now.Add(-v.skew())) {
		return fmt.Errorf("%w: dated %s", ErrExpired, t.Format(timeFormat))
	}
	signed := strings.Split(signedList, ";")
	headers, err := canonicalHeaders(signed, r.Host, r.Header, r.ContentLength)
	if err != nil {
		return err
	}
	payload := hashHex(body)
	switch claimed := r.Header.Get(headerContentSHA256); claimed {
	case "":
	case unsignedPayload:
		payload = unsignedPayload
	default:
		if claimed != payload {
			return fmt.Errorf("%w: payload hash", ErrMismatch)
		}
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: query: %w", ErrMalformed, err)
	}
	creq := canonicalRequest(r.Method, canonicalURI(r.URL), canonicalQuery(q), headers, signedList, payload)
	want := signature(secret, t, v.Region, v.Service, creq)
	if !hmac.Equal([]byte(strings.ToLower(sig)), []byte(want)) {
		return ErrMismatch
	}
	return nil
}

// checkCredential parses "<akid>/<yyyymmdd>/<region>/<service>/aws4_request",
// checks the scope against the verifier and the signing time t, and returns
// the secret key.
func (v Verifier) checkCredential(cred string, t time.Time) (string, error) {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return "", fmt.Errorf("%w: credential", ErrMalformed)
	}
	if v.Lookup == nil {
		return "", ErrUnknownKey
	}
	secret, ok := v.Lookup(parts[0])
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownKey, parts[0])
	}
	if parts[1] != t.Format(shortFormat) || parts[2] != v.Region || parts[3] != v.Service {
		return "", fmt.Errorf("%w: %s", ErrScope, strings.Join(parts[1:], "/"))
	}
	return secret, nil
}

// canonicalHeaders builds the canonical header block for the signed header
// names. The host comes from the request line; content-length falls back to
// contentLength (Go's server moves it out of the header map in some cases).
func canonicalHeaders(signed []string, host string, h http.Header, contentLength int64) (string, error) {
	if !slices.IsSorted(signed) || !slices.Contains(signed, "host") {
		return "", fmt.Errorf("%w: signed headers %q", ErrMalformed, strings.Join(signed, ";"))
	}
	var b strings.Builder
	for _, name := range signed {
		if name == "" || name != strings.ToLower(name) {
			return "", fmt.Errorf("%w: signed header %q", ErrMalformed, name)
		}
		var values []string
		switch name {
		case "host":
			values = []string{host}
		case "content-length":
			values = h.Values(name)
			if len(values) == 0 && contentLength >= 0 {
				values = []string{strconv.FormatInt(contentLength, 10)}
			}
		default:
			values = h.Values(name)
		}
		values = slices.Clone(values)
		for i, val := range values {
			values[i] = strings.Join(strings.Fields(val), " ")
		}
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(strings.Join(values, ","))
		b.WriteByte('\n')
	}
	return b.String(), nil
}

func canonicalRequest(method, uri, query, headers, signedHeaders, payloadHash string) string {
	return strings.Join([]string{method, uri, query, headers, signedHeaders, payloadHash}, "\n")
}

// canonicalURI is the URI-encoded path ("/" when empty). Like the AWS SDKs for
// every service but S3, the already escaped path is encoded once more.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = escape(s)
	}
	return strings.Join(segs, "/")
}

// canonicalQuery encodes q with keys sorted (then values), each key and value
// RFC 3986 encoded.
func canonicalQuery(q url.Values) string {
	type kv struct{ k, v string }
	var pairs []kv
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, kv{escape(k), escape(v)})
		}
	}
	slices.SortFunc(pairs, func(a, b kv) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// escape percent-encodes every byte except the RFC 3986 unreserved
// characters, with upper-case hex digits.
func escape(s string) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&15])
	}
	return b.String()
}

func credentialScope(t time.Time, region, service string) string {
	return t.Format(shortFormat) + "/" + region + "/" + service + "/aws4_request"
}

// signature computes the hex signature of a canonical request.
func signature(secret string, t time.Time, region, service, creq string) string {
	t = t.UTC()
	sts := strings.Join([]string{Algorithm, t.Format(timeFormat), credentialScope(t, region, service), hashHex([]byte(creq))}, "\n")
	k := hmacSHA256([]byte("AWS4"+secret), t.Format(shortFormat))
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, sts))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
