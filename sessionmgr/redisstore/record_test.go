package redisstore

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/internal/wire"
)

// TestRecordRoundTrip fills every field of a Session and an Event with a
// distinct value, encodes and decodes them as the store does, and checks
// that nothing is lost: a domain field the record (sessionmgr/internal/wire)
// does not carry fails it.
func TestRecordRoundTrip(t *testing.T) {
	var (
		s sessionmgr.Session
		e sessionmgr.Event
		n int
	)
	fill(t, reflect.ValueOf(&s).Elem(), "Session", &n)
	fill(t, reflect.ValueOf(&e).Elem(), "Event", &n)

	data, err := writer(wire.Version).encodeSession(s)
	if err != nil {
		t.Fatalf("encodeSession = %v", err)
	}
	got, err := decodeSession(data, s.Epoch, s.Owner)
	if err != nil {
		t.Fatalf("decodeSession = %v", err)
	}
	if d := cmp.Diff(s, got); d != "" {
		t.Errorf("Session round trip (-want +got):\n%s", d)
	}

	b, err := writer(wire.Version).encodeEvent(e)
	if err != nil {
		t.Fatalf("encodeEvent = %v", err)
	}
	gotEvent, err := decodeEvent(b)
	if err != nil {
		t.Fatalf("decodeEvent = %v", err)
	}
	if d := cmp.Diff(e, gotEvent); d != "" {
		t.Errorf("Event round trip (-want +got):\n%s", d)
	}
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	stringerType = reflect.TypeFor[fmt.Stringer]()
)

// lastNamed is the highest value of the enum type typ whose String is a
// name, not "Type(n)".
func lastNamed(typ reflect.Type) int64 {
	v := reflect.New(typ).Elem()
	i := int64(1)
	for ; ; i++ {
		v.SetInt(i)
		if strings.Contains(v.Interface().(fmt.Stringer).String(), "(") {
			return i - 1
		}
	}
}

// fill sets every exported field reachable from v to a value of its own
// (n counts them), with large numbers where precision could be lost, and
// enums (ints with a String method, stored by name) to their last named
// value.
func fill(t *testing.T, v reflect.Value, path string, n *int) {
	t.Helper()
	*n++
	if v.Kind() == reflect.Int && v.Type().Implements(stringerType) {
		v.SetInt(lastNamed(v.Type()))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(time.Date(2026, 3, 1, 12, 0, *n, 123456789, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fill(t, v.Field(i), path+"."+f.Name, n)
			} else {
				t.Errorf("%s.%s is unexported: JSON drops it", path, f.Name)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), path, n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range v.Len() {
			fill(t, v.Index(i), path+"[]", n)
		}
	case reflect.String:
		v.SetString(path + "\x00\"{}\u2028")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(1<<62 + int64(*n))
	case reflect.Int8, reflect.Int16, reflect.Int32:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint64:
		v.SetUint(1<<63 + uint64(*n))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		v.SetUint(uint64(*n % 200))
	default:
		t.Fatalf("%s is a %s: teach this test and the encoding about it", path, v.Kind())
	}
}
