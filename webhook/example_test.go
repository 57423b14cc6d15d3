package webhook_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/acme/viewersession/webhook"
)

// A receiver verifies each request's signature on the raw body before it
// trusts it, answers 2xx only once the event is handled, and dedupes by
// the event's id (delivery is at least once: an event may come again).
func Example_receiver() {
	secret := []byte("the -webhook-secret, shared with the service")
	var (
		mu   sync.Mutex
		seen = map[string]bool{} // in production: a table with a unique key on id
	)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), webhook.DefaultTolerance); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev webhook.Event
		if err := webhook.Decode(body, &ev); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		dup := seen[ev.ID]
		seen[ev.ID] = true
		mu.Unlock()
		if !dup {
			fmt.Println(ev.Type, ev.Session, ev.ViewerID)
		}
		w.WriteHeader(http.StatusNoContent)
	})

	// What the service sends (here by hand, twice: a redelivery).
	srv := httptest.NewServer(handler)
	defer srv.Close()
	body := []byte(`{"id":"evt_1","version":1,"type":"session.created","session":"sessions/abc","channel":{"arn":"arn:x"},"viewer_id":"tv-1","time":"2026-12-05T22:00:00Z","sequence":1}`)
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header.Set(webhook.SignatureHeader, webhook.Sign(secret, time.Now(), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	// Output:
	// session.created sessions/abc tv-1
	// 204
	// 204
}
