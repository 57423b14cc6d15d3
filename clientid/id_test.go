package clientid_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/acme/viewersession/clientid"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		give string
		ok   bool
	}{
		{"simple", "viewer", true},
		{"all classes", "aZ09_.-", true},
		{"one char", "a", true},
		{"dot only", ".", true},
		{"max length", strings.Repeat("x", 256), true},
		{"aws not prefix", "my-AWS_id", true},
		{"aws without underscore", "AWSome", true},
		{"aws dash", "AWS-1", true},
		{"empty", "", false},
		{"too long", strings.Repeat("x", 257), false},
		{"space", "a b", false},
		{"colon", "AROAEXAMPLE:alice", false},
		{"slash", "a/b", false},
		{"unicode", "José", false},
		{"nul", "a\x00", false},
		{"invalid utf8", "a\xff", false},
		{"aws prefix", "AWS_x", false},
		{"aws prefix lower", "aws_x", false},
		{"aws prefix mixed", "aWs_", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := clientid.Parse(tt.give)
			if tt.ok {
				if err != nil || string(got) != tt.give {
					t.Fatalf("Parse(%q) = %q, %v; want %q, nil", tt.give, got, err, tt.give)
				}
				return
			}
			if !errors.Is(err, clientid.ErrInvalid) || got != "" {
				t.Fatalf("Parse(%q) = %q, %v; want \"\", an error wrapping ErrInvalid", tt.give, got, err)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name string
		give string
		want string
	}{
		{"valid unchanged", "viewer-1.a_b", "viewer-1.a_b"},
		{"empty", "", "viewer"},
		{"sts user id", "AROAEXAMPLEID:alice@example.com", "AROAEXAMPLEID_alice_example.com"},
		{"spaces collapse", "alice  smith", "alice_smith"},
		{"unicode", "José Müller", "Jos_M_ller"},
		{"emoji run", "a😀😀b", "a_b"},
		{"invalid utf8", "a\xff\xfeb", "a_b"},
		{"only invalid", "   ", "_"},
		{"aws prefix", "AWS_viewer", "x-AWS_viewer"},
		{"aws prefix after replace", "aws:viewer", "x-aws_viewer"},
		{"overlong", long, long[:247] + "-279e8f01"}, // FNV-1a 32 of the input
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clientid.Sanitize(tt.give)
			if got != tt.want {
				t.Errorf("Sanitize(%q) = %q; want %q", tt.give, got, tt.want)
			}
			if _, err := clientid.Parse(got); err != nil {
				t.Errorf("Parse(Sanitize(%q)) = %v; want nil", tt.give, err)
			}
		})
	}
}

func TestSanitizeKeepsLongInputsApart(t *testing.T) {
	a := strings.Repeat("a", 300) + "1"
	b := strings.Repeat("a", 300) + "2"
	if ga, gb := clientid.Sanitize(a), clientid.Sanitize(b); ga == gb {
		t.Errorf("Sanitize of two 301-byte inputs that differ in the last byte = %q for both; want different ids", ga)
	}
}
