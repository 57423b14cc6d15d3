package sessionmgr

import (
	"slices"
	"strings"
)

// sdpFingerprint returns the DTLS certificate fingerprints an SDP carries
// (RFC 8122 `a=fingerprint:<hash-func> <value>`, at session or media
// level), normalized so that two descriptions of one certificate compare
// equal: each as "<hash-func> <value>" in lower case, sorted, without
// repeats, joined by commas. "" when there is none.
//
// A master that answers an ICE restart from a new peer connection (the KVS
// JS sample always does) answers with a new certificate: its fingerprint
// tells a restart of the old DTLS association from its replacement.
func sdpFingerprint(sdp string) string {
	var fps []string
	for line := range strings.Lines(sdp) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=fingerprint:")
		if !ok {
			continue
		}
		f := strings.Fields(strings.ToLower(v))
		if len(f) != 2 {
			continue
		}
		fps = append(fps, f[0]+" "+f[1])
	}
	slices.Sort(fps)
	return strings.Join(slices.Compact(fps), ",")
}

// fingerprintChanged reports whether an answer's fingerprint shows a
// different certificate than the current one. An unknown side (an answer
// without fingerprints, or none applied yet) is no evidence of a change.
func fingerprintChanged(current, answer string) bool {
	return current != "" && answer != "" && current != answer
}
