package bench

import (
	"testing"
	"time"
)

func TestDistQ(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var hundred []time.Duration
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, ms(i))
	}
	tests := []struct {
		name string
		give []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{ms(7)}, 0.99, ms(7)},
		{"median of 4 by nearest rank", []time.Duration{ms(4), ms(1), ms(3), ms(2)}, 0.5, ms(2)},
		{"p50 of 100", hundred, 0.50, ms(50)},
		{"p99 of 100", hundred, 0.99, ms(99)},
		{"max", hundred, 1, ms(100)},
		{"min", hundred, 0, ms(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewDist(tt.give).Q(tt.q); got != tt.want {
				t.Errorf("NewDist(%v).Q(%v) = %v; want %v", tt.give, tt.q, got, tt.want)
			}
		})
	}
}
