package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/internal/switchnet"
	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

const (
	// rpcTimeout bounds every unary call and emulator request.
	rpcTimeout = 15 * time.Second
	// closeTimeout bounds CloseSession at the end, and endTimeout the wait
	// for the CLOSED event after it: short, so that an interrupted watch
	// sums up promptly.
	closeTimeout = 5 * time.Second
	endTimeout   = 5 * time.Second
	// connectTimeout bounds a TCP connect to the service: a fresh
	// connection after a network change must not wait out the kernel's
	// SYN retries on a path that is gone.
	connectTimeout = 2 * time.Second
	// statsInterval is how often the media line is printed.
	statsInterval = time.Second
	// The -network-change-after addresses: "Wi-Fi", then "LTE".
	firstAddr  = "127.0.0.2"
	secondAddr = "127.0.0.3"
)

// watch runs `viewerctl watch`: the human output on stdout, or with -json
// JSON lines on stdout and the human output on stderr.
func watch(ctx context.Context, cfg watchConfig, stdout, stderr io.Writer) error {
	human, js := stdout, (*jsonLines)(nil)
	if cfg.JSON {
		human, js = stderr, newJSONLines(stdout)
	}
	conn, err := dialConfig(cfg.commonConfig)
	if err != nil {
		err = fmt.Errorf("%w: -addr %q: %w", errUsage, cfg.Addr, err)
		js.summary(time.Now(), nil, 0, err)
		return err
	}
	defer conn.Close()
	w := newWatcher(cfg, conn, human, js)
	defer w.dev.hc.CloseIdleConnections()
	return w.run(ctx)
}

// dialService returns a new connection to the service at addr, with its
// own TCP socket. The thin client dials one for each (re-)connection, and
// the closing CloseSession gets one too: after a network change, a socket
// opened earlier may sit on a path that no longer exists.
func dialService(addr string) (*grpc.ClientConn, error) {
	return dialConfig(commonConfig{Addr: addr})
}

// dialConfig is dialService with -tls, -ca and -server-name.
func dialConfig(c commonConfig) (*grpc.ClientConn, error) {
	creds, err := c.transportCredentials()
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(c.Addr, grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: connectTimeout}
			return d.DialContext(ctx, "tcp", addr)
		}))
}

func newWatcher(cfg watchConfig, conn *grpc.ClientConn, human io.Writer, js *jsonLines) *watcher {
	w := &watcher{
		cfg: cfg,
		out: human,
		js:  js,
		loc: time.Local,
		tl:  timeline{loc: time.Local, verbose: cfg.Verbose},
		api: vspb.NewViewerSessionServiceClient(conn),
		dev: newDevAPI(cfg.DevHTTP),
	}
	w.dial = func(context.Context) (*grpc.ClientConn, error) { return dialConfig(cfg.commonConfig) }
	w.fault, _ = findFault(cfg.Fault)
	return w
}

// watcher is one `viewerctl watch` run. Its fields belong to the goroutine
// that calls run.
type watcher struct {
	cfg   watchConfig
	out   io.Writer  // the human output
	js    *jsonLines // -json's lines, or nil
	loc   *time.Location
	api   vspb.ViewerSessionServiceClient
	dev   devAPI
	fault fault                                           // zero without -fault
	dial  func(context.Context) (*grpc.ClientConn, error) // the thin client's connections

	session    *vspb.Session
	faultSet   bool   // a fault was applied: clear it at the end
	cameraMode string // camera-offline: the mode to restart the camera in
	faultErr   error  // a fault or network change that could not be made

	tl     timeline  // the timeline's lines, one per state change
	heldAt time.Time // when tl began holding a STATE_CHANGED

	joined    bool      // the app has joined the session: -duration runs
	down      time.Time // when the stream to the service went down; zero while up
	downWhy   string    // the error that took it down
	goingAway bool      // the server said GOING_AWAY: the next join is on another replica
	noVideo   bool      // the media line said "no video": quiet until packets grow

	connected  *vspb.SessionEvent // the first CONNECTED event
	current    *vspb.SessionEvent // the latest CONNECTED event
	lastState  vspb.SessionState
	recoveries int
	netC       <-chan time.Time // fires the network change
	netTimer   *time.Timer
	sw         *switchnet.SwitchNet

	obs observation // what the judge needs
}

func (w *watcher) printf(format string, args ...any) {
	fmt.Fprintf(w.out, format+"\n", args...)
}

// note prints a line of viewerctl's own (a fault, the network change) in
// the timeline's layout.
func (w *watcher) note(what, format string, args ...any) {
	w.flushTimeline()
	w.printf("%s  %-15s  %s", time.Now().In(w.loc).Format(clockLayout), what, fmt.Sprintf(format, args...))
}

// backend adds the API key to an outgoing call.
func (w *watcher) backend(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+w.cfg.APIKey)
}

func (w *watcher) run(ctx context.Context) error {
	resp, err := w.create(ctx)
	if err != nil {
		w.js.summary(time.Now(), nil, 0, err)
		return err
	}
	w.obs.created = time.Now()
	w.session = resp.GetSession()
	w.printHeader()
	summary, v, packets, err := w.watch(ctx, resp.GetSessionToken())
	if cerr := w.clearFault(ctx); err == nil && cerr != nil {
		err = cerr
	}
	w.js.summary(time.Now(), v, packets, err)
	if err != nil {
		return err
	}
	w.printf("%s", summary)
	return nil
}

// watch applies a before-connecting fault, runs the client until the end,
// and judges the outcome: a one-line summary, or what went wrong; and the
// verdict on the video when there was one to judge.
func (w *watcher) watch(ctx context.Context, token string) (string, *verdict, int64, error) {
	if w.fault.name != "" && !w.fault.connected {
		if err := w.applyFault(ctx, ""); err != nil {
			return "", nil, 0, err
		}
	}

	ccfg := viewerclient.Config{
		Dial:           w.dial,
		Session:        w.session.GetName(),
		Token:          token,
		Mode:           w.cfg.Mode,
		NoNetworkWatch: !w.cfg.WatchNetwork,
		IceServers:     w.session.GetIceServers(),
	}
	if w.cfg.NetworkChangeAfter > 0 {
		sw, err := switchnet.New(firstAddr)
		if err != nil {
			return "", nil, 0, err
		}
		w.sw = sw
		ccfg.Net = sw
		w.note("network", "the client uses %s; it moves to %s %v after CONNECTED", firstAddr, secondAddr, w.cfg.NetworkChangeAfter)
	}
	q := newItemQueue()
	ccfg.OnEvent = func(e *vspb.SessionEvent) { q.push(item{at: time.Now(), event: e}) }
	ccfg.OnNetworkChange = func(d string) { q.push(item{at: time.Now(), network: d}) }
	ccfg.OnRedial = func(r viewerclient.RedialReason) { q.push(item{at: time.Now(), redial: string(r)}) }
	ccfg.Logger = slog.New(linkLogs{push: q.push})
	c, err := viewerclient.New(ccfg)
	if err != nil {
		return "", nil, 0, err
	}
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		if w.netTimer != nil {
			w.netTimer.Stop()
		}
	}()

	runErr, ended := w.follow(ctx, c, q, done)
	w.obs.end = time.Now()
	w.obs.stats = c.Stats()
	w.obs.samples = append(w.obs.samples, sample{at: w.obs.end, packets: w.obs.stats.PacketsReceived})
	if !ended {
		runErr = w.closeSession(ctx, q, done, cancelRun)
	}
	for _, it := range q.take() {
		w.onItem(ctx, it)
	}
	w.flushTimeline()
	s := c.Stats()
	summary, v, err := w.result(s, runErr)
	return summary, v, s.PacketsReceived, err
}

// create creates the session with the requested options.
func (w *watcher) create(ctx context.Context) (*vspb.CreateSessionResponse, error) {
	ch := &vspb.Channel{Name: w.cfg.Channel, Region: w.cfg.Region}
	if isARN(w.cfg.Channel) {
		ch = &vspb.Channel{Arn: w.cfg.Channel}
	}
	opts := &vspb.SessionOptions{MaxAttempts: uint32(w.cfg.MaxAttempts)}
	for _, o := range []struct {
		v   time.Duration
		dst **durationpb.Duration
	}{
		{w.cfg.AnswerTimeout, &opts.AnswerTimeout},
		{w.cfg.RetryDelay, &opts.RetryDelay},
		{w.cfg.ICERestartTimeout, &opts.IceRestartTimeout},
	} {
		if o.v > 0 {
			*o.dst = durationpb.New(o.v)
		}
	}
	cctx, cancel := context.WithTimeout(w.backend(ctx), rpcTimeout)
	defer cancel()
	resp, err := w.api.CreateSession(cctx, &vspb.CreateSessionRequest{Channel: ch, ViewerId: w.cfg.ViewerID, Options: opts})
	if err != nil {
		return nil, withHint(w.cfg.Addr, rpcError("create session", err))
	}
	return resp, nil
}

func isARN(channel string) bool { return len(channel) > 4 && channel[:4] == "arn:" }

func (w *watcher) printHeader() {
	s := w.session
	o := s.GetOptions()
	w.printf("session %s: viewer %q on channel %s (%s)", s.GetName(), s.GetViewerId(), w.cfg.Channel, s.GetChannel().GetArn())
	w.printf("  clientId %s, %s mode; answer timeout %v, retry delay %v, %d attempts, ICE-restart timeout %v",
		s.GetClientId(), w.cfg.Mode, o.GetAnswerTimeout().AsDuration(), o.GetRetryDelay().AsDuration(),
		o.GetMaxAttempts(), o.GetIceRestartTimeout().AsDuration())
}

// follow prints the timeline and the media statistics until the run ends
// (ended true, with Run's error), -duration passes (counted from the app's
// join, its first APP_ATTACHED) or ctx ends; it samples the packet
// counters every 100 ms.
func (w *watcher) follow(ctx context.Context, c *viewerclient.Client, q *itemQueue, done <-chan error) (runErr error, ended bool) {
	ticker := time.NewTicker(statsInterval)
	defer ticker.Stop()
	samples := time.NewTicker(sampleInterval)
	defer samples.Stop()
	var durC <-chan time.Time
	var durT *time.Timer
	defer func() {
		if durT != nil {
			durT.Stop()
		}
	}()
	var prev viewerclient.Stats
	prevAt := time.Now()
	for {
		if w.joined && durT == nil && w.cfg.Duration > 0 {
			durT = time.NewTimer(w.cfg.Duration)
			durC = durT.C
		}
		select {
		case <-q.ready:
			for _, it := range q.take() {
				w.onItem(ctx, it)
			}
		case now := <-ticker.C:
			if w.connected != nil {
				s := c.Stats()
				w.mediaLine(now, s, prev, now.Sub(prevAt))
				prev, prevAt = s, now
			}
		case now := <-samples.C:
			s := c.Stats()
			w.obs.samples = append(w.obs.samples, sample{at: now, packets: s.PacketsReceived})
			w.js.media(now, s.Media)
			if w.tl.pending != nil && now.Sub(w.heldAt) > mergeWindow {
				w.flushTimeline()
			}
		case <-w.netC:
			w.netC = nil
			w.changeNetwork(ctx, c)
		case <-durC:
			w.note("end", "-duration %v is up: closing the session", w.cfg.Duration)
			return nil, false
		case <-ctx.Done():
			w.note("end", "interrupted: closing the session")
			return nil, false
		case err := <-done:
			return err, true
		}
	}
}

// onItem handles what the client reported: a timeline event, a network
// change or a re-dial.
func (w *watcher) onItem(ctx context.Context, it item) {
	switch {
	case it.event != nil:
		w.js.event(it.at, it.event)
		w.obs.events = append(w.obs.events, seenEvent{at: it.at, e: it.event})
		w.onEvent(ctx, it.event)
	case it.network != "":
		w.js.network(it.at, it.network)
		w.printf("%s  %-15s  %s: re-dialing and telling the service", it.at.In(w.loc).Format(clockLayout), "network", it.network)
	case it.redial != "":
		w.js.redial(it.at, it.redial)
		if !w.down.IsZero() {
			return // one re-dial per attempt while down: the down line said it
		}
		w.printf("%s  %-15s  %s: a fresh connection to the service", it.at.In(w.loc).Format(clockLayout), "redial", it.redial)
	case it.link != nil:
		w.onLink(it.at, it.link)
	}
}

// onLink prints one line when the stream to the service goes down (and
// why; the client re-dials on its own), one when the reason changes (not
// one per attempt), and one when the app has rejoined.
func (w *watcher) onLink(at time.Time, l *linkChange) {
	clock := at.In(w.loc).Format(clockLayout)
	switch {
	case l.down && w.down.IsZero():
		w.down, w.downWhy = at, l.why
		w.flushTimeline()
		w.printf("%s  %-15s  the stream to the service at %s is down (%s): re-dialing", clock, "stream", w.cfg.Addr, w.plainWhy(l.why))
	case l.down:
		if why := w.plainWhy(l.why); why != w.plainWhy(w.downWhy) {
			w.printf("%s  %-15s  still down (%s): re-dialing", clock, "stream", why)
		}
		w.downWhy = l.why
	case !w.down.IsZero():
		w.printf("%s  %-15s  back: the app rejoined the session after %v down", clock, "stream", at.Sub(w.down).Round(time.Millisecond))
		w.down, w.downWhy, w.goingAway = time.Time{}, "", false
	case w.goingAway:
		w.printf("%s  %-15s  back: the app rejoined the session after the server's GOING_AWAY", clock, "stream")
		w.goingAway = false
	}
}

// plainWhy is a stream error in a few words: the gRPC code and message,
// and a hint when nothing listens at -addr.
func (w *watcher) plainWhy(err string) string {
	if strings.Contains(err, "connection refused") {
		return "connection refused: is the server running at " + w.cfg.Addr + "?"
	}
	if _, rest, ok := strings.Cut(err, "rpc error: code = "); ok {
		code, desc, _ := strings.Cut(rest, " desc = ")
		return code + ": " + desc
	}
	if err == "" {
		return "the stream ended"
	}
	return err
}

// mediaLine prints the once-a-second media line while video arrives, and
// a single "no video" line when it stops, not one a second.
func (w *watcher) mediaLine(now time.Time, s, prev viewerclient.Stats, interval time.Duration) {
	if s.PacketsReceived > prev.PacketsReceived {
		w.noVideo = false
		w.printf("%s", formatStats(now, s, prev, interval))
		return
	}
	if w.noVideo {
		return
	}
	w.noVideo = true
	since := "yet"
	if !s.LastPacketAt.IsZero() {
		since = "since " + s.LastPacketAt.In(w.loc).Format(clockLayout)
	}
	line := fmt.Sprintf("%s  %-15s  no video %s; the next media line comes when video is back", now.In(w.loc).Format(clockLayout), "media", since)
	if !w.down.IsZero() {
		line += " (the stream to the service is down)"
	}
	w.printf("%s", line)
}

// flushTimeline prints a STATE_CHANGED that waited for its event.
func (w *watcher) flushTimeline() {
	for _, l := range w.tl.flush() {
		w.printf("%s", l)
	}
}

// onEvent prints one timeline event and acts on it: the first CONNECTED
// starts the network-change timer and fires an after-CONNECTED fault; a
// scheduled retry lifts late-answer.
func (w *watcher) onEvent(ctx context.Context, e *vspb.SessionEvent) {
	held := w.tl.pending
	for _, l := range w.tl.add(e) {
		w.printf("%s", l)
	}
	if w.tl.pending != nil && w.tl.pending != held {
		w.heldAt = time.Now()
	}
	w.lastState = e.GetState()
	switch e.GetType() {
	case vspb.EventType_EVENT_TYPE_APP_ATTACHED:
		w.joined = true
	case vspb.EventType_EVENT_TYPE_GOING_AWAY:
		w.goingAway = true
		w.note("server", "the server at %s is going away: the app moves to another replica and resumes the session", w.cfg.Addr)
	case vspb.EventType_EVENT_TYPE_RECOVERED:
		w.recoveries++
	case vspb.EventType_EVENT_TYPE_RETRY_SCHEDULED:
		if w.fault.name == "late-answer" && w.faultSet {
			if err := w.dev.fault(ctx, kvsemu.FaultRequest{ChannelARN: w.session.GetChannel().GetArn(), Fault: "clear"}); err != nil {
				w.faultFailed(err)
			} else {
				w.note("fault", "late-answer lifted: the camera answers the retry at once")
			}
		}
	}
	if e.GetState() != vspb.SessionState_SESSION_STATE_CONNECTED {
		return
	}
	w.current = e
	if w.connected != nil {
		return
	}
	w.connected = e
	if w.sw != nil {
		w.netTimer = time.NewTimer(w.cfg.NetworkChangeAfter)
		w.netC = w.netTimer.C
	}
	if w.fault.connected {
		if err := w.applyFault(ctx, e.GetClientId()); err != nil {
			w.faultFailed(err)
		}
	}
}

// changeNetwork moves the client to the second address (the old one goes
// silent, like a phone leaving Wi-Fi) and tells the service.
func (w *watcher) changeNetwork(ctx context.Context, c *viewerclient.Client) {
	if err := w.sw.Switch(secondAddr); err != nil {
		w.faultFailed(err)
		return
	}
	w.note("network", "the client moved from %s to %s (the old address went silent)", firstAddr, secondAddr)
	nctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	if err := c.NetworkChanged(nctx, fmt.Sprintf("viewerctl: %s -> %s", firstAddr, secondAddr)); err != nil {
		w.faultFailed(fmt.Errorf("network change: %w", err))
	}
}

func (w *watcher) faultFailed(err error) {
	w.note("fault", "%v", err)
	if w.faultErr == nil {
		w.faultErr = err
	}
}

// applyFault asks the emulator for -fault on the session's channel;
// clientID is the session's current one (after-CONNECTED faults).
func (w *watcher) applyFault(ctx context.Context, clientID string) error {
	arn := w.session.GetChannel().GetArn()
	req := kvsemu.FaultRequest{ChannelARN: arn, Fault: w.fault.emuFault, N: w.fault.n, ClientID: clientID}
	fctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	switch w.fault.name {
	case "late-answer":
		d := w.cfg.FaultDelay
		if d == 0 {
			d = w.session.GetOptions().GetAnswerTimeout().AsDuration() + time.Second
		}
		req.DelayMs = d.Milliseconds()
	case "camera-offline":
		mode, err := w.dev.cameraMode(fctx, arn)
		if err != nil {
			return err
		}
		w.cameraMode = mode
	}
	if err := w.dev.fault(fctx, req); err != nil {
		return err
	}
	w.faultSet = true
	what := w.fault.help
	if clientID != "" {
		what += " (clientId " + clientID + ")"
	}
	w.note("fault", "%s: %s", w.fault.name, what)
	return nil
}

// clearFault undoes an applied fault: clears the channel's camera faults
// and restarts a camera that -fault camera-offline stopped.
func (w *watcher) clearFault(ctx context.Context) error {
	if !w.faultSet {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rpcTimeout)
	defer cancel()
	arn := w.session.GetChannel().GetArn()
	err := w.dev.fault(cctx, kvsemu.FaultRequest{ChannelARN: arn, Fault: "clear"})
	if err == nil && w.cameraMode != "" {
		err = w.dev.fault(cctx, kvsemu.FaultRequest{ChannelARN: arn, Fault: "camera-online", Mode: w.cameraMode})
	}
	if err != nil {
		w.note("fault", "clearing failed: %v", err)
		return fmt.Errorf("clear fault: %w", err)
	}
	w.note("fault", "cleared")
	return nil
}

// closeSession closes the session with CloseSession, on a fresh
// connection, and waits, printing the timeline, until the client has seen
// it end (or endTimeout passes). It returns Run's error.
func (w *watcher) closeSession(ctx context.Context, q *itemQueue, done <-chan error, cancelRun context.CancelFunc) error {
	err := w.closeCall(ctx)
	if err != nil {
		w.note("end", "%v", withHint(w.cfg.Addr, rpcError("close session", err)))
		cancelRun()
		return <-done
	}
	timer := time.NewTimer(endTimeout)
	defer timer.Stop()
	for {
		select {
		case <-q.ready:
			for _, it := range q.take() {
				w.onItem(ctx, it)
			}
		case err := <-done:
			return err
		case <-timer.C:
			w.note("end", "the client did not see the session end within %v; stopping it", endTimeout)
			cancelRun()
			return <-done
		}
	}
}

// closeCall is CloseSession on a connection of its own.
func (w *watcher) closeCall(ctx context.Context) error {
	conn, err := dialConfig(w.cfg.commonConfig)
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(w.backend(context.WithoutCancel(ctx)), closeTimeout)
	defer cancel()
	_, err = vspb.NewViewerSessionServiceClient(conn).CloseSession(cctx, &vspb.CloseSessionRequest{Name: w.session.GetName()})
	return err
}

// result judges the run: a summary when the session reached CONNECTED,
// video arrived and kept flowing, the failure in plain words otherwise;
// and the verdict on the video once there was video to judge.
func (w *watcher) result(s viewerclient.Stats, runErr error) (string, *verdict, error) {
	if fe, ok := asFailed(runErr); ok {
		return "", nil, errors.New(describeFailure(fe))
	}
	if !w.down.IsZero() { // given up, or interrupted, while the service was unreachable
		return "", nil, fmt.Errorf("%w: the server at %s went away and stayed unreachable for %v (%s)", errServerGone,
			w.cfg.Addr, w.obs.end.Sub(w.down).Round(time.Second), w.plainWhy(w.downWhy))
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return "", nil, rpcError("thin client stopped", runErr)
	}
	if w.connected == nil {
		return "", nil, fmt.Errorf("%w (last state %s)", errNotConnected, trimEnum(w.lastState.String(), "SESSION_STATE_"))
	}
	if s.PacketsReceived == 0 {
		return "", nil, errNoMedia
	}
	v := judge(w.obs)
	if err := v.err(); err != nil {
		w.note("summary", "%s", v.describe()) // the error line says what went wrong; this, how much
		return "", &v, err
	}
	if w.faultErr != nil {
		return "", &v, w.faultErr
	}
	return summary(w.connected, w.current, w.recoveries, s) + "; " + v.describe(), &v, nil
}

// item is one report of the client, handed from its callbacks (which must
// not block) to the watcher's goroutine: an event, a network change, a
// re-dial or its stream going down or up, and when it came.
type item struct {
	at      time.Time
	event   *vspb.SessionEvent
	network string
	redial  string
	link    *linkChange
}

// itemQueue hands items from the client's callbacks to the watcher.
type itemQueue struct {
	ready chan struct{} // has a token while items wait

	// mu guards items.
	mu    sync.Mutex
	items []item
}

func newItemQueue() *itemQueue { return &itemQueue{ready: make(chan struct{}, 1)} }

func (q *itemQueue) push(it item) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *itemQueue) take() []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	its := q.items
	q.items = nil
	return its
}
