package kvs

import (
	"fmt"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
)

// OfferInfo is what ValidateOffer reads from an SDP offer: its ICE
// credentials and its DTLS fingerprint ("sha-256 AB:CD:...").
type OfferInfo struct {
	ICEUfrag, ICEPwd, Fingerprint string
}

// ValidateOffer parses an SDP offer with pion/sdp and checks that it fits in
// one KVS message (base64 of its RTCSessionDescription JSON within 10,000
// bytes) and has at least one media section, ICE credentials and a DTLS
// fingerprint. Errors wrap ErrInvalidArgument.
func ValidateOffer(offer string) (OfferInfo, error) {
	if offer == "" {
		return OfferInfo{}, fmt.Errorf("kvs: %w: empty SDP offer", ErrInvalidArgument)
	}
	// Bound the work before parsing: base64 grows 4/3, so anything longer
	// than the payload limit cannot fit.
	if len(offer) > maxPayload {
		return OfferInfo{}, fmt.Errorf("kvs: %w: SDP offer of %d bytes cannot fit KVS's %d byte payload", ErrInvalidArgument, len(offer), maxPayload)
	}
	payload, err := offerPayload(offer)
	if err != nil {
		return OfferInfo{}, fmt.Errorf("kvs: %w: %w", ErrInvalidArgument, err)
	}
	if len(payload) > maxPayload {
		return OfferInfo{}, fmt.Errorf("kvs: %w: SDP offer makes a %d byte payload, over KVS's %d", ErrInvalidArgument, len(payload), maxPayload)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return OfferInfo{}, fmt.Errorf("kvs: %w: parse SDP offer: %w", ErrInvalidArgument, err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return OfferInfo{}, fmt.Errorf("kvs: %w: SDP offer has no media section", ErrInvalidArgument)
	}
	info := OfferInfo{
		ICEUfrag:    attribute(&sd, "ice-ufrag"),
		ICEPwd:      attribute(&sd, "ice-pwd"),
		Fingerprint: attribute(&sd, "fingerprint"),
	}
	var missing []string
	if info.ICEUfrag == "" {
		missing = append(missing, "a=ice-ufrag")
	}
	if info.ICEPwd == "" {
		missing = append(missing, "a=ice-pwd")
	}
	if info.Fingerprint == "" {
		missing = append(missing, "a=fingerprint")
	}
	if len(missing) > 0 {
		return OfferInfo{}, fmt.Errorf("kvs: %w: SDP offer lacks %s", ErrInvalidArgument, strings.Join(missing, ", "))
	}
	return info, nil
}

// attribute returns the session-level value of key, else the first media
// section's that has it.
func attribute(sd *sdp.SessionDescription, key string) string {
	if v, ok := sd.Attribute(key); ok && v != "" {
		return strings.TrimSpace(v)
	}
	for _, md := range sd.MediaDescriptions {
		if v, ok := md.Attribute(key); ok && v != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ValidateCandidate checks an ICE candidate before it is sent: a candidate
// line of at most 1024 bytes that pion/ice parses, and an sdpMid or an
// sdpMLineIndex to place it. The empty end-of-candidates marker is refused
// (KVS masters expect real candidates). Errors wrap ErrInvalidArgument.
func ValidateCandidate(c Candidate) error {
	switch {
	case c.Candidate == "":
		return fmt.Errorf("kvs: %w: empty candidate", ErrInvalidArgument)
	case len(c.Candidate) > maxCandidate:
		return fmt.Errorf("kvs: %w: candidate of %d bytes, over %d", ErrInvalidArgument, len(c.Candidate), maxCandidate)
	case c.SDPMid == "" && c.SDPMLineIndex == nil:
		return fmt.Errorf("kvs: %w: candidate has neither sdpMid nor sdpMLineIndex", ErrInvalidArgument)
	case len(c.SDPMid) > 256 || len(c.UsernameFragment) > 256:
		return fmt.Errorf("kvs: %w: candidate sdpMid or usernameFragment over 256 bytes", ErrInvalidArgument)
	}
	if _, err := ice.UnmarshalCandidate(c.Candidate); err != nil {
		return fmt.Errorf("kvs: %w: parse candidate: %w", ErrInvalidArgument, err)
	}
	return nil
}

// IsICERestart reports whether next is an ICE restart of prev: the same DTLS
// fingerprint (the same peer connection) with new ICE credentials. An offer
// identical in all three is a duplicate, one with another fingerprint is a
// new peer connection.
func IsICERestart(prev, next OfferInfo) bool {
	if prev.Fingerprint == "" || !strings.EqualFold(prev.Fingerprint, next.Fingerprint) {
		return false
	}
	return prev.ICEUfrag != next.ICEUfrag || prev.ICEPwd != next.ICEPwd
}
