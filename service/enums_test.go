package service

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// pairs is one enum map as the test sees it: proto value -> the domain
// value's name ("" where the domain type has no names).
type pairs struct {
	enum   protoreflect.EnumDescriptor
	prefix string
	names  map[protoreflect.EnumNumber]string
	n      int
}

func pairsOf[D interface {
	comparable
	fmt.Stringer
}, P protoreflect.Enum](m map[D]P, prefix string) pairs {
	var zero P
	ps := pairs{enum: zero.Descriptor(), prefix: prefix, names: map[protoreflect.EnumNumber]string{}, n: len(m)}
	for d, p := range m {
		ps.names[p.Number()] = d.String()
	}
	return ps
}

// number is a domain enum without names: its pairs are checked for
// coverage only.
type number int

func (n number) String() string { return "" }

func unnamed[D ~int, P protoreflect.Enum](m map[D]P) map[number]P {
	out := make(map[number]P, len(m))
	for d, p := range m {
		out[number(d)] = p
	}
	return out
}

// Every enum map pairs each value of the proto's enum with exactly one
// domain value, and where the domain type has names, the same name (the
// proto's less its prefix; UNSPECIFIED is the domain's UNKNOWN). A value
// added to the proto, renamed or renumbered fails here.
func TestEnumMapsMatchTheProto(t *testing.T) {
	for _, ps := range []pairs{
		pairsOf(stateToProto, "SESSION_STATE_"),
		pairsOf(closeToProto, "CLOSE_REASON_"),
		pairsOf(failureReasonToProto, "FAILURE_REASON_"),
		pairsOf(eventTypeToProto, "EVENT_TYPE_"),
		pairsOf(recoveryStepToProto, "RECOVERY_STEP_"),
		pairsOf(unnamed(recoveryPolicyToProto), "RECOVERY_POLICY_"),
		pairsOf(unnamed(renegotiateActionToProto), "ACTION_"),
		pairsOf(unnamed(iceStateToProto), "ICE_CONNECTION_STATE_"),
		pairsOf(unnamed(peerStateToProto), "PEER_CONNECTION_STATE_"),
	} {
		t.Run(string(ps.enum.Name()), func(t *testing.T) {
			values := ps.enum.Values()
			if ps.n != values.Len() || len(ps.names) != values.Len() {
				t.Errorf("%d pairs onto %d proto values, want one pair for each of the proto's %d values", ps.n, len(ps.names), values.Len())
			}
			for i := range values.Len() {
				v := values.Get(i)
				name, ok := ps.names[v.Number()]
				if !ok {
					t.Errorf("%s has no domain value", v.Name())
					continue
				}
				want := strings.TrimPrefix(string(v.Name()), ps.prefix)
				if want == "UNSPECIFIED" {
					want = "UNKNOWN"
				}
				if name != "" && name != want {
					t.Errorf("%s is paired with the domain's %s, want %s", v.Name(), name, want)
				}
			}
		})
	}
	if got := stateFromProto[vspb.SessionState_SESSION_STATE_CONNECTED].String(); got != "CONNECTED" {
		t.Errorf("stateFromProto[CONNECTED] = %s", got)
	}
}
