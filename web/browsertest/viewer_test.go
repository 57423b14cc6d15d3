//go:build browser

package browsertest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

const webURL = "http://" + boxIP + ":8081"

// TestVideo is (a): the camera's video plays in Chromium through the web
// port over Connect (binary and JSON) and gRPC-Web: the first frame is
// decoded and framesDecoded keeps growing.
func TestVideo(t *testing.T) {
	needBrowser(t)
	box := newBox(t)
	startDevServer(t, box, boxIP+":8081", boxIP, boxIP)
	d := startDriver(t, box)
	for _, protocol := range []string{"connect", "grpc-web", "connect-json"} {
		t.Run(protocol, func(t *testing.T) {
			s := mintSession(t, box, webURL, "demo-camera", "viewer-"+protocol)
			page := "v" + protocol
			d.call("open", map[string]any{"page": page, "url": viewerURL(pagesURL, webURL, protocol, s)})
			from := 0
			v := d.waitVideo(page, &from, 30)
			t.Logf("%s: frames decoded %v, time to first frame %.0f ms", protocol, v.frames, v.firstFrameMs)
			// Leaving the page ends the session (pagehide: leave).
			d.call("close", map[string]any{"page": page})
			waitClosed(t, d, s)
		})
	}
}

// waitClosed checks that the session ended because its page left: a
// WatchSession of it (another tab, as a backend watches) replays its end,
// CLOSED CLIENT_LEFT, sent by the library on pagehide.
func waitClosed(t *testing.T, d *driver, s devSession) {
	t.Helper()
	page := "closed-" + s.Name
	d.call("open", map[string]any{"page": page, "url": pagesURL + "/viewer.html?watchonly=1&endpoint=" + queryEscape(webURL) + "&session=" + queryEscape(s.Name) + "&token=" + queryEscape(s.Token)})
	from := 0
	e := d.wait(page, &from, 10*time.Second, "the CLOSED event", func(e pageEvent) bool { return e.kind() == "timeline" && e.str("type") == "CLOSED" })
	if e.str("closeReason") != "CLIENT_LEFT" {
		t.Errorf("the session closed with %s (%q), want CLIENT_LEFT: the page's leave", e.str("closeReason"), e.str("message"))
	}
	d.call("close", map[string]any{"page": page})
}

// TestNoAnswer is (b): the camera never answers; the service tries twice
// (a fresh clientId for the second attempt) and the page gets the typed
// ANSWER_TIMEOUT error.
func TestNoAnswer(t *testing.T) {
	needBrowser(t)
	box := newBox(t)
	startDevServer(t, box, boxIP+":8081", boxIP, boxIP, "-answer-timeout", "2s", "-retry-delay", "1s")
	fault(t, box, map[string]any{"channelArn": channelARN(t, box, "demo-camera"), "fault": "no-answer"})
	d := startDriver(t, box)
	s := mintSession(t, box, webURL, "demo-camera", "no-answer")
	d.call("open", map[string]any{"page": "v", "url": viewerURL(pagesURL, webURL, "connect", s)})
	from := 0
	e := d.wait("v", &from, 20*time.Second, "the error event", func(e pageEvent) bool { return e.kind() == "error" })
	if e.str("reason") != "ANSWER_TIMEOUT" {
		t.Fatalf("the page got error %v, want reason ANSWER_TIMEOUT", e.Data)
	}
	var timeouts, offers []pageEvent
	for _, e := range d.all("v") {
		switch {
		case e.kind() == "timeline" && e.str("type") == "ANSWER_TIMEOUT":
			timeouts = append(timeouts, e)
		case e.kind() == "timeline" && e.str("type") == "OFFER_SENT":
			offers = append(offers, e)
		}
	}
	if len(offers) != 2 || len(timeouts) != 2 {
		t.Fatalf("offers sent %d, answer timeouts %d: want 2 attempts", len(offers), len(timeouts))
	}
	if offers[0].str("clientId") == offers[1].str("clientId") {
		t.Errorf("both attempts used clientId %q; want a fresh one for the retry", offers[0].str("clientId"))
	}
	t.Logf("no answer: %d attempts (clientIds %s, %s), then %s: %s; frames decoded 0", len(offers),
		offers[0].str("clientId"), offers[1].str("clientId"), e.str("reason"), e.str("message"))
}

// TestCORS is (e): an origin on -web-origins may call the web port (its
// preflight with Authorization is allowed); another origin is refused, in
// the browser and on the wire.
func TestCORS(t *testing.T) {
	needBrowser(t)
	box := newBox(t)
	startDevServer(t, box, boxIP+":8081", boxIP, boxIP)
	s := mintSession(t, box, webURL, "demo-camera", "cors")
	rpc := webURL + "/viewersession.v1.ViewerSessionService/Signal"

	// On the wire: the preflight a browser sends before a call with a token.
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, rpc, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,connect-protocol-version")
		res, err := nsClient(box).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	ok := preflight(pagesURL)
	if ok.StatusCode/100 != 2 || ok.Header.Get("Access-Control-Allow-Origin") != pagesURL ||
		!strings.Contains(strings.ToLower(ok.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight from the allowed origin: %s, headers %v; want 2xx allowing %s and Authorization", ok.Status, ok.Header, pagesURL)
	}
	bad := preflight(otherURL)
	if bad.StatusCode/100 == 2 || bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from a disallowed origin: %s, headers %v; want a refusal without an allow header", bad.Status, bad.Header)
	}

	// In the browser: the same call from each origin's page.
	d := startDriver(t, box)
	call := `async ([url, token]) => {
		try {
			const r = await fetch(url, { method: "POST", headers: { Authorization: "Bearer " + token, "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
				body: JSON.stringify({ name: "` + s.Name + `", mediaReport: {} }) });
			return "status " + r.status;
		} catch (e) { return "refused: " + e; }
	}`
	results := map[string]string{}
	for _, origin := range []string{pagesURL, otherURL} {
		page := "p" + origin[len(origin)-4:]
		d.call("open", map[string]any{"page": page, "url": origin + "/viewer.html?idle=1"})
		res := evalCall(t, d, page, call, rpc, s.Token)
		results[origin] = res
	}
	if !strings.HasPrefix(results[pagesURL], "status ") {
		t.Errorf("a call from the allowed origin %s: %s; want an answer", pagesURL, results[pagesURL])
	}
	if !strings.HasPrefix(results[otherURL], "refused") {
		t.Errorf("a call from the disallowed origin %s: %s; want the browser to refuse it", otherURL, results[otherURL])
	}
	t.Logf("CORS: allowed origin %s -> %s (preflight %s); other origin %s -> %s (preflight %s)",
		pagesURL, results[pagesURL], ok.Status, otherURL, results[otherURL], bad.Status)
}

func evalCall(t *testing.T, d *driver, page, fn string, args ...string) string {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
	}
	res := d.call("eval", map[string]any{"page": page, "expr": "(" + fn + ")([" + strings.Join(quoted, ",") + "])"})
	return strings.Trim(string(res), `"`)
}
