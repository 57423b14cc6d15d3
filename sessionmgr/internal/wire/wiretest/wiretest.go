// Package wiretest holds the golden-fixture helpers the stored and
// forwarded formats' tests share (sessionmgr/redisstore,
// sessionmgr/redisreplicas): fixtures live in the test's testdata folder.
package wiretest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Strict decodes data (the fixture file) into v refusing unknown keys, and
// reports a failure.
func Strict(t *testing.T, file string, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s into %T: %v", file, v, err)
	}
}

// Write writes the fixture testdata/name.
func Write(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Read reads the fixture testdata/name.
func Read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
