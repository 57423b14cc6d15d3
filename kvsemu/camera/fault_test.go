package camera

import (
	"testing"
	"time"
)

func TestAdmitOffer(t *testing.T) {
	type want struct {
		ok    bool
		delay time.Duration
		o     outcome
	}
	answer := want{ok: true, o: outcomeAnswered}
	tests := []struct {
		name string
		give Fault
		want []want // one per successive offer
	}{
		{name: "none", give: Fault{}, want: []want{answer, answer}},
		{name: "no answer", give: Fault{NoAnswer: true}, want: []want{{o: outcomeFaultNoAnswer}, {o: outcomeFaultNoAnswer}}},
		{name: "delay", give: Fault{AnswerDelay: time.Second},
			want: []want{{ok: true, delay: time.Second, o: outcomeAnswered}}},
		{name: "from offer 1", give: Fault{AnswerFromOffer: 1}, want: []want{answer}},
		{name: "from offer 3", give: Fault{AnswerFromOffer: 3},
			want: []want{{o: outcomeFaultEarlyOffer}, {o: outcomeFaultEarlyOffer}, answer, answer}},
		{name: "no answer wins", give: Fault{NoAnswer: true, AnswerFromOffer: 2},
			want: []want{{o: outcomeFaultNoAnswer}, {o: outcomeFaultNoAnswer}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{Dial: dialNothing})
			if err != nil {
				t.Fatal(err)
			}
			c.admitOffer() // an offer before the fault does not count towards it
			c.SetFault(tt.give)
			for i, w := range tt.want {
				ok, delay, o := c.admitOffer()
				if ok != w.ok || delay != w.delay || o != w.o {
					t.Errorf("offer %d: admitOffer() = %v, %v, %v, want %v, %v, %v", i+1, ok, delay, o, w.ok, w.delay, w.o)
				}
			}
			if got := c.Stats().Offers; got != uint64(len(tt.want)+1) {
				t.Errorf("Stats().Offers = %d, want %d", got, len(tt.want)+1)
			}
		})
	}
}
