package kvsemu

import (
	"net/http"
	"slices"
	"strings"
)

// CORS on the control plane. A browser SDK (the KVS JS SDK with the AWS SDK
// for JavaScript) sends its SigV4 headers cross-origin, so each POST is
// preceded by an OPTIONS preflight, which KVS answers without a signature
// (KVS-PROTOCOL.md 4.1). The signaling WebSocket needs no CORS.

// corsAllowHeaders are the request headers always allowed: the ones the
// AWS SDKs for JavaScript sign or send. A preflight's
// Access-Control-Request-Headers are allowed as well.
const corsAllowHeaders = "authorization, content-type, x-amz-date, x-amz-security-token, x-amz-user-agent, " +
	"amz-sdk-invocation-id, amz-sdk-request, x-amz-content-sha256, x-amz-target"

const (
	// corsMaxAge is how long a browser may cache a preflight, in seconds
	// (Chromium caps it at 7200).
	corsMaxAge = "7200"
	// corsExposeHeaders are the response headers a browser script may read:
	// the SDKs read the request id and the error type.
	corsExposeHeaders = "x-amzn-requestid, x-amzn-errortype, x-amz-apigw-id, date"
)

// preflight answers a CORS preflight with 200: any origin, POST, the
// requested headers, no signature needed.
func preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	allowOrigin(h, r)
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", allowHeaders(r.Header.Values("Access-Control-Request-Headers")))
	h.Set("Access-Control-Max-Age", corsMaxAge)
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// allowOrigin sets the headers that let the page at r's Origin read the
// response: the Origin echoed, or "*" when there is none.
func allowOrigin(h http.Header, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
}

// allowHeaders is corsAllowHeaders plus every well-formed header name in
// requested (comma-separated lists), lower case, each once.
func allowHeaders(requested []string) string {
	out := strings.Split(corsAllowHeaders, ", ")
	for _, list := range requested {
		for name := range strings.SplitSeq(list, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if isToken(name) && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return strings.Join(out, ", ")
}

// isToken reports whether s is a non-empty HTTP token (RFC 9110 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
