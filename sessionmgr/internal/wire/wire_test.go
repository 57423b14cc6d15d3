package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/viewersession/sessionmgr"
)

// enumCodec is one stored enum: its stored name and its parse, by number.
type enumCodec struct {
	name  func(int) string
	parse func(string) int
}

func codec[E interface {
	~int
	String() string
}](parse func(string) E) enumCodec {
	return enumCodec{
		name:  func(i int) string { return name(E(i), parse) },
		parse: func(s string) int { return int(parse(s)) },
	}
}

// storedEnums are the domain enums that records and messages carry.
var storedEnums = map[string]enumCodec{
	"State":             codec(sessionmgr.ParseState),
	"CloseReason":       codec(sessionmgr.ParseCloseReason),
	"FailureReason":     codec(sessionmgr.ParseFailureReason),
	"EventType":         codec(sessionmgr.ParseEventType),
	"RecoveryPolicy":    codec(sessionmgr.ParseRecoveryPolicy),
	"RenegotiateAction": codec(sessionmgr.ParseRenegotiateAction),
	"ICEState":          codec(sessionmgr.ParseICEState),
	"PeerState":         codec(sessionmgr.ParsePeerState),
	"RecoveryStep":      codec(sessionmgr.ParseRecoveryStep),
}

// TestEnumNames reads sessionmgr's source for the constants of every
// stored enum, and checks that each has a name of its own that parses back
// to it: adding a constant without a name fails here, not in Redis.
func TestEnumNames(t *testing.T) {
	consts := enumConsts(t, "../..")
	for typ, c := range storedEnums {
		names := consts[typ]
		if len(names) < 2 {
			t.Errorf("%s: found %d constants in sessionmgr; want its iota block", typ, len(names))
			continue
		}
		seen := map[string]string{}
		for i, constName := range names {
			n := c.name(i)
			if i == 0 {
				if n != "" {
					t.Errorf("%s: the zero value %s is stored as %q; want it left out", typ, constName, n)
				}
				continue
			}
			if n == "" || strings.ContainsAny(n, "()") {
				t.Errorf("%s: %s (%d) has no stored name (%q): give it one in its String and Parse", typ, constName, i, n)
				continue
			}
			if prev, ok := seen[n]; ok {
				t.Errorf("%s: %s and %s are both stored as %q", typ, prev, constName, n)
			}
			seen[n] = constName
			if got := c.parse(n); got != i {
				t.Errorf("%s: parse(%q) = %d, want %d (%s)", typ, n, got, i, constName)
			}
		}
		if got := c.parse("NO_SUCH_NAME"); got != 0 {
			t.Errorf("%s: parse of an unknown name = %d, want 0", typ, got)
		}
		if n := c.name(len(names)); n != "" {
			t.Errorf("%s: the value past the last constant is stored as %q; want it left out", typ, n)
		}
	}
}

// enumConsts returns, for each type of an iota block in the package in
// dir, its constants in order. A block of another shape fails the test,
// so that it gets taught.
func enumConsts(t *testing.T, dir string) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, ent := range entries {
		if n := ent.Name(); !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, ent.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST || len(g.Specs) == 0 {
				continue
			}
			first := g.Specs[0].(*ast.ValueSpec)
			typ, ok := first.Type.(*ast.Ident)
			if !ok || len(first.Values) != 1 {
				continue
			}
			if id, ok := first.Values[0].(*ast.Ident); !ok || id.Name != "iota" {
				continue
			}
			if _, stored := storedEnums[typ.Name]; !stored {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				if s != g.Specs[0] && (vs.Type != nil || len(vs.Values) != 0) {
					t.Fatalf("%s: the constant %s breaks the iota block: teach TestEnumNames", typ.Name, vs.Names[0].Name)
				}
				for _, n := range vs.Names {
					out[typ.Name] = append(out[typ.Name], n.Name)
				}
			}
		}
	}
	return out
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: "", want: ""},
		{give: "2026-03-01T12:00:00.5Z", want: "2026-03-01T12:00:00.5Z"},
		{give: "2026-03-01T13:00:00+01:00", want: "2026-03-01T12:00:00Z"},
		{give: "yesterday", want: ""},
	}
	for _, tt := range tests {
		if got := FormatTime(ParseTime(tt.give)); got != tt.want {
			t.Errorf("FormatTime(ParseTime(%q)) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestUnknownNames decodes version 2 records with names this code does not
// know (a newer replica's): the record survives, the enum reads as zero.
func TestUnknownNames(t *testing.T) {
	s, err := DecodeSession([]byte(`{"v":2,"id":"s1","state":"HIBERNATING","close":"NEW_REASON","failure":{"reason":"X","message":"m"},"future":{"a":1}}`))
	if err != nil {
		t.Fatalf("DecodeSession = %v", err)
	}
	if s.ID != "s1" || s.State != sessionmgr.StateUnknown || s.Close != sessionmgr.CloseUnknown ||
		s.Failure == nil || s.Failure.Reason != sessionmgr.FailureUnknown || s.Failure.Message != "m" {
		t.Errorf("DecodeSession = %+v; want id s1, unknown enums, the failure's message", s)
	}
	e, err := DecodeEvent([]byte(`{"v":3,"seq":4,"type":"TELEPORTED","connState":{"ice":"QUANTUM","peer":"CONNECTED"}}`))
	if err != nil {
		t.Fatalf("DecodeEvent = %v", err)
	}
	if e.Seq != 4 || e.Type != sessionmgr.EventUnknown || e.ConnState == nil ||
		e.ConnState.ICE != sessionmgr.ICEUnknown || e.ConnState.Peer != sessionmgr.PeerConnected {
		t.Errorf("DecodeEvent = %+v; want seq 4, an unknown type, ICE unknown, peer CONNECTED", e)
	}
}
