package viewerclient_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

// An app joins the session its backend created, watches until video flows,
// and leaves.
func Example() {
	svc := startService() // the service and a camera, in this process
	defer svc.close()
	resp := svc.createSession("alice", nil) // done by the app's backend

	c, err := viewerclient.New(viewerclient.Config{
		// A real app dials with TLS: credentials.NewTLS(nil).
		Dial:       viewerclient.Dialer(svc.addr(), insecure.NewCredentials()),
		Session:    resp.GetSession().GetName(),
		Token:      resp.GetSessionToken(),
		IceServers: resp.GetSession().GetIceServers(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	connected := func(e *vspb.SessionEvent) bool { return e.GetState() == vspb.SessionState_SESSION_STATE_CONNECTED }
	if _, err := c.WaitEvent(ctx, connected); err != nil {
		fmt.Println("not connected:", err)
		return
	}
	fmt.Println("connected")
	if err := c.WaitRTP(ctx, 10); err != nil {
		fmt.Println("no video:", err)
		return
	}
	fmt.Println("video is flowing")

	if err := c.Leave(ctx); err != nil {
		fmt.Println("leave:", err)
	}
	fmt.Println("Run returned", <-done)
	last := c.Events()[len(c.Events())-1]
	fmt.Println("last event:", last.GetType(), last.GetCloseReason())
	// Output:
	// connected
	// video is flowing
	// Run returned <nil>
	// last event: EVENT_TYPE_CLOSED CLOSE_REASON_CLIENT_LEFT
}

// Config.OnEvent sees every timeline event once, in order, as it arrives;
// here it prints each state the session enters.
func ExampleConfig_onEvent() {
	svc := startService()
	defer svc.close()
	resp := svc.createSession("bob", nil)

	var last vspb.SessionState
	c, err := viewerclient.New(viewerclient.Config{
		Dial:       viewerclient.Dialer(svc.addr(), insecure.NewCredentials()),
		Session:    resp.GetSession().GetName(),
		Token:      resp.GetSessionToken(),
		IceServers: resp.GetSession().GetIceServers(),
		// Called on Run's goroutine: it must not block.
		OnEvent: func(e *vspb.SessionEvent) {
			if e.GetState() != last {
				last = e.GetState()
				fmt.Println(last)
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	if err := c.WaitRTP(ctx, 10); err != nil {
		fmt.Println("no video:", err)
	}
	if err := c.Leave(ctx); err != nil {
		fmt.Println("leave:", err)
	}
	<-done
	// Output:
	// SESSION_STATE_PENDING
	// SESSION_STATE_SIGNALING
	// SESSION_STATE_AWAITING_OFFER
	// SESSION_STATE_AWAITING_ANSWER
	// SESSION_STATE_CONNECTING
	// SESSION_STATE_CONNECTED
	// SESSION_STATE_CLOSED
}

// When the session fails, Run returns a *FailedError: it matches
// ErrSessionFailed, names the reason, and carries the gRPC status the
// service ended the session with.
func ExampleFailedError() {
	svc := startService()
	defer svc.close()
	svc.cameraNeverAnswers()
	resp := svc.createSession("carol", &vspb.SessionOptions{AnswerTimeout: durationpb.New(time.Second), MaxAttempts: 1})

	c, err := viewerclient.New(viewerclient.Config{
		Dial:       viewerclient.Dialer(svc.addr(), insecure.NewCredentials()),
		Session:    resp.GetSession().GetName(),
		Token:      resp.GetSessionToken(),
		IceServers: resp.GetSession().GetIceServers(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.Run(ctx)

	fmt.Println(errors.Is(err, viewerclient.ErrSessionFailed))
	var fe *viewerclient.FailedError
	if errors.As(err, &fe) {
		fmt.Println(fe.Reason())
		fmt.Println(status.Code(err))
	}
	// Output:
	// true
	// FAILURE_REASON_ANSWER_TIMEOUT
	// DeadlineExceeded
}
