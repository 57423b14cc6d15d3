package clientid_test

import (
	"strings"
	"testing"
	"time"

	"github.com/acme/viewersession/clientid"
)

func TestDefaultConfig(t *testing.T) {
	got := clientid.DefaultConfig()
	want := clientid.Config{LeaseTTL: 30 * time.Second, DefaultCooldown: 60 * time.Second, MaxSuffix: 20, KeyPrefix: "vs:v1", Timeout: time.Second}
	if got != want {
		t.Errorf("DefaultConfig() = %+v; want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v; want nil", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		give clientid.Config
		want []string // substrings of the error; none = valid
	}{
		{name: "zero takes defaults", give: clientid.Config{}},
		{name: "negative lease", give: clientid.Config{LeaseTTL: -1}, want: []string{"LeaseTTL"}},
		{name: "brace prefix", give: clientid.Config{KeyPrefix: "vs:{x}"}, want: []string{"KeyPrefix"}},
		{
			name: "every problem at once",
			give: clientid.Config{LeaseTTL: -1, DefaultCooldown: -1, MaxSuffix: -1, KeyPrefix: "{", Timeout: -1},
			want: []string{"LeaseTTL", "DefaultCooldown", "MaxSuffix", "KeyPrefix", "Timeout"},
		},
		{name: "too many suffixes", give: clientid.Config{MaxSuffix: 1001}, want: []string{"MaxSuffix"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate(%+v) = %v; want nil", tt.give, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil; want an error naming %q", tt.give, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%+v) = %q; want it to name %s", tt.give, err, w)
				}
			}
		})
	}
}
