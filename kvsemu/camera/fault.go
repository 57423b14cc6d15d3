package camera

import "time"

// Fault is the set of injected answer faults. The zero Fault means "behave
// normally". Set it with Camera.SetFault at any time.
type Fault struct {
	// NoAnswer makes the camera never answer any offer.
	NoAnswer bool
	// AnswerDelay delays each answer by this long, measured from the offer's
	// receipt.
	AnswerDelay time.Duration
	// AnswerFromOffer N (N > 1) ignores offers 1..N-1 received since the fault
	// was set and answers from the Nth on. 0 and 1 answer every offer.
	AnswerFromOffer int
}
