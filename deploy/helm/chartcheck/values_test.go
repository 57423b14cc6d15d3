package main

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// exclusive are the values that every-value.yaml leaves out because they
// exclude one it sets (the chart refuses both at once).
var exclusive = map[string]string{
	"apiKeys.keys": "apiKeys.existingSecret",
	"redis.url":    "redis.existingSecret",
}

// TestEveryValueFixture: ../tests/every-value.yaml, which make chart
// renders and decodes strictly, sets every value values.schema.json knows,
// so that no template branch a value reaches goes unchecked.
func TestEveryValueFixture(t *testing.T) {
	var schema map[string]any
	b, err := os.ReadFile("../viewer-session/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile("../tests/every-value.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var fixture map[string]any
	if err := yaml.UnmarshalStrict(b, &fixture); err != nil {
		t.Fatal(err)
	}
	defs, _ := schema["$defs"].(map[string]any)
	var leaves []string
	var walk func(node map[string]any, path string)
	walk = func(node map[string]any, path string) {
		if ref, ok := node["$ref"].(string); ok {
			node, _ = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		props, ok := node["properties"].(map[string]any)
		if !ok {
			leaves = append(leaves, path)
			return
		}
		for k, v := range props {
			sub, _ := v.(map[string]any)
			walk(sub, strings.TrimPrefix(path+"."+k, "."))
		}
	}
	walk(schema, "")
	sort.Strings(leaves)
	if len(leaves) < 50 {
		t.Fatalf("%d leaves in values.schema.json: the walk is broken", len(leaves))
	}
	for _, p := range leaves {
		if _, skip := exclusive[p]; skip {
			continue
		}
		var node any = fixture
		for _, k := range strings.Split(p, ".") {
			m, _ := node.(map[string]any)
			var found bool
			if node, found = m[k]; !found {
				t.Errorf("every-value.yaml does not set %s", p)
				break
			}
		}
	}
	for p, other := range exclusive {
		if !strings.Contains(string(b), strings.Split(other, ".")[1]) {
			t.Errorf("every-value.yaml leaves out %s for %s, but does not set %s", p, other, other)
		}
	}
}
