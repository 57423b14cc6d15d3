package sessionmgr

import "testing"

func TestSDPFingerprint(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{"none", "v=0\r\ns=-\r\n", ""},
		{"session level", "v=0\r\na=fingerprint:sha-256 AB:CD:EF\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "sha-256 ab:cd:ef"},
		{"media level, repeated per m-line", "v=0\r\nm=audio 9 x 0\r\na=fingerprint:SHA-256 ab:cd:ef\r\nm=video 9 x 96\r\na=fingerprint:sha-256 AB:CD:EF\r\n", "sha-256 ab:cd:ef"},
		{"two hash functions", "v=0\na=fingerprint:sha-256 AB:CD\na=fingerprint:sha-1 01:02\n", "sha-1 01:02,sha-256 ab:cd"},
		{"malformed line ignored", "v=0\r\na=fingerprint:sha-256\r\na=fingerprint:sha-256 AB:CD\r\n", "sha-256 ab:cd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sdpFingerprint(tt.give); got != tt.want {
				t.Errorf("sdpFingerprint(%q) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}

func TestFingerprintChanged(t *testing.T) {
	tests := []struct {
		current, answer string
		want            bool
	}{
		{"sha-256 ab", "sha-256 ab", false},
		{"sha-256 ab", "sha-256 cd", true},
		{"", "sha-256 cd", false}, // nothing applied yet: no evidence
		{"sha-256 ab", "", false}, // an answer without fingerprint: no evidence
	}
	for _, tt := range tests {
		if got := fingerprintChanged(tt.current, tt.answer); got != tt.want {
			t.Errorf("fingerprintChanged(%q, %q) = %v, want %v", tt.current, tt.answer, got, tt.want)
		}
	}
}
