package memstore

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/acme/viewersession/sessionmgr"
)

// TestCloneCoversEveryReference fills every field of a Session and an
// Event, clones them, and checks that the clone is equal and shares no
// pointer or slice with the original. A new reference field in
// sessionmgr's types fails it until the clones learn about it.
func TestCloneCoversEveryReference(t *testing.T) {
	tests := []struct {
		name  string
		give  any
		clone func(any) any
	}{
		{
			name:  "Session",
			give:  &sessionmgr.Session{},
			clone: func(v any) any { return cloneSession(v.(sessionmgr.Session)) },
		},
		{
			name:  "Event",
			give:  &sessionmgr.Event{},
			clone: func(v any) any { return cloneEvent(v.(sessionmgr.Event)) },
		},
		{
			// What a timeline keeps (stored) gives back every field.
			name:  "stored Event",
			give:  &sessionmgr.Event{},
			clone: func(v any) any { return store(v.(sessionmgr.Event)).event() },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := reflect.ValueOf(tt.give).Elem()
			if refs := fill(t, v, tt.name); refs == 0 {
				t.Fatalf("fill(%s) found no reference fields", tt.name)
			}
			orig := v.Interface()
			got := tt.clone(orig)
			if d := cmp.Diff(orig, got); d != "" {
				t.Errorf("clone differs (-orig +clone):\n%s", d)
			}
			for _, path := range shared(reflect.ValueOf(orig), reflect.ValueOf(got), tt.name) {
				t.Errorf("clone shares %s with the original", path)
			}
		})
	}
}

var timeType = reflect.TypeFor[time.Time]()

// fill sets every exported field reachable from v to a non-zero value and
// returns how many pointers and slices it made.
func fill(t *testing.T, v reflect.Value, path string) int {
	t.Helper()
	refs := 0
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(time.Unix(1, 0)))
			return 0
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				refs += fill(t, v.Field(i), path+"."+f.Name)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		refs += 1 + fill(t, v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		refs++
		for i := range v.Len() {
			refs += fill(t, v.Index(i), path+"[]")
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	default:
		t.Fatalf("%s is a %s: teach clone.go and this test about it", path, v.Kind())
	}
	return refs
}

// shared returns the paths at which a and b share memory.
func shared(a, b reflect.Value, path string) []string {
	var out []string
	switch a.Kind() {
	case reflect.Struct:
		if a.Type() == timeType {
			return nil
		}
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				out = append(out, shared(a.Field(i), b.Field(i), path+"."+f.Name)...)
			}
		}
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return nil
		}
		if a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		out = append(out, shared(a.Elem(), b.Elem(), path)...)
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		for i := range min(a.Len(), b.Len()) {
			out = append(out, shared(a.Index(i), b.Index(i), path+"[]")...)
		}
	}
	return out
}

// TestStoredSmall pins what a timeline keeps per event: 112 bytes (an
// Event takes 192), and no payload for an event without one.
func TestStoredSmall(t *testing.T) {
	if got := unsafe.Sizeof(stored{}); got > 112 {
		t.Errorf("stored is %d bytes, want at most 112", got)
	}
	ev := sessionmgr.Event{Seq: 3, Type: sessionmgr.EventStateChanged, State: sessionmgr.StateConnected, Message: "m", Time: time.Unix(5, 0)}
	s := store(ev)
	if s.more != nil {
		t.Errorf("store(%+v) kept a payload", ev)
	}
	if d := cmp.Diff(ev, s.event()); d != "" {
		t.Errorf("round trip differs (-want +got):\n%s", d)
	}
}
