package sigv4

import "errors"

var (
	// ErrMissing reports a request or URL that carries no SigV4 authentication.
	ErrMissing = errors.New("sigv4: no authentication")
	// ErrMalformed reports SigV4 parameters that cannot be parsed.
	ErrMalformed = errors.New("sigv4: malformed authentication")
	// ErrUnknownKey reports an access key id the verifier does not know.
	ErrUnknownKey = errors.New("sigv4: unknown access key id")
	// ErrScope reports a credential scope for another region, service or day.
	ErrScope = errors.New("sigv4: wrong credential scope")
	// ErrMismatch reports a signature that does not match the request.
	ErrMismatch = errors.New("sigv4: signature does not match")
	// ErrExpired reports a presigned URL past its X-Amz-Expires, or a signed
	// request older than the allowed clock skew.
	ErrExpired = errors.New("sigv4: signature expired")
	// ErrNotYetValid reports a signature dated further in the future than the
	// allowed clock skew.
	ErrNotYetValid = errors.New("sigv4: signature not yet current")
)
