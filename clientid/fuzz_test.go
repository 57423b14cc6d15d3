package clientid_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/acme/viewersession/clientid"
)

// validRE is an independent statement of the charset and length rule.
var validRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,256}$`)

func oracleValid(s string) bool {
	return validRE.MatchString(s) && !strings.HasPrefix(strings.ToUpper(s), "AWS_")
}

// fuzzSeeds are shared by both targets; testdata/fuzz holds more.
var fuzzSeeds = []string{
	"", "viewer", "AWS_x", "aws_", "AROAEXAMPLE:alice", "José", "a\xff", strings.Repeat("z", 256),
	strings.Repeat("z", 257), "x-AWS_", "_", "-", ".",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := clientid.Parse(s)
		want := oracleValid(s)
		switch {
		case want && (err != nil || string(id) != s):
			t.Fatalf("Parse(%q) = %q, %v; want %q, nil", s, id, err, s)
		case !want && (!errors.Is(err, clientid.ErrInvalid) || id != ""):
			t.Fatalf("Parse(%q) = %q, %v; want \"\", ErrInvalid", s, id, err)
		}
	})
}

func FuzzSanitize(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := clientid.Sanitize(s)
		if !oracleValid(got) {
			t.Fatalf("Sanitize(%q) = %q; not a valid id", s, got)
		}
		if oracleValid(s) && got != s {
			t.Fatalf("Sanitize(%q) = %q; a valid id must pass unchanged", s, got)
		}
		if again := clientid.Sanitize(s); again != got {
			t.Fatalf("Sanitize(%q) = %q, then %q; want the same", s, got, again)
		}
	})
}
