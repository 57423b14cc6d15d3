package kvsemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsv4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/acme/viewersession/internal/testclock"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newFakeClock is a settable clock for Config.Now, at the real time.
func newFakeClock() *testclock.Clock { return testclock.New(time.Now()) }

// startEmu starts an emulator on an ephemeral port; change edits the config.
func startEmu(t *testing.T, change func(*Config)) *Emulator {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	if change != nil {
		change(&cfg)
	}
	emu, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start() error: %v", err)
	}
	t.Cleanup(func() {
		if err := emu.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return emu
}

func mustChannel(t *testing.T, emu *Emulator, name string, ttl time.Duration) string {
	t.Helper()
	arn, err := emu.CreateChannel(name, ttl)
	if err != nil {
		t.Fatalf("CreateChannel(%q) error: %v", name, err)
	}
	return arn
}

// awsClient is aws-sdk-go-v2's kinesisvideo client pointed at the emulator.
func awsClient(emu *Emulator, secret string) *kinesisvideo.Client {
	return kinesisvideo.NewFromConfig(aws.Config{
		Region:      emu.Region(),
		Credentials: credentials.NewStaticCredentialsProvider(emu.cfg.AccessKeyID, secret, ""),
		HTTPClient:  emu.HTTPClient(),
	}, func(o *kinesisvideo.Options) {
		o.BaseEndpoint = aws.String(emu.Endpoint())
	})
}

// signedPost sends a SigV4-signed (aws-sdk-go-v2 signer) JSON POST.
func signedPost(t *testing.T, emu *Emulator, path string, body any, secret string, at time.Time) (*http.Response, []byte) {
	t.Helper()
	return signedPostWith(t, emu, path, body, secret, at, nil)
}

// signedPostWith is signedPost with extra request headers.
func signedPostWith(t *testing.T, emu *Emulator, path string, body any, secret string, at time.Time,
	header http.Header) (*http.Response, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, emu.Endpoint()+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	sum := sha256Hex(b)
	err = awsv4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: emu.cfg.AccessKeyID, SecretAccessKey: secret},
		req, sum, signingService, emu.Region(), at)
	if err != nil {
		t.Fatal(err)
	}
	client := emu.HTTPClient()
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// dialErr dials the signaling WSS with a URL from urlFor; it returns the
// HTTP status of a refused upgrade.
func dialErr(t *testing.T, emu *Emulator, u string) (*websocket.Conn, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	client := emu.HTTPClient()
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: client})
	status := 0
	if resp != nil {
		status = resp.StatusCode
		if resp.Body != nil {
			resp.Body.Close()
		}
	}
	if err != nil {
		client.CloseIdleConnections()
		return nil, status, err
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws, status, nil
}

// dial connects a viewer (clientID != "") or the master, and fails the test
// if refused.
func dial(t *testing.T, emu *Emulator, arn, clientID string) *websocket.Conn {
	t.Helper()
	u, err := emu.PresignViewerURL(arn, clientID)
	if err != nil {
		t.Fatal(err)
	}
	ws, status, err := dialErr(t, emu, u)
	if err != nil {
		t.Fatalf("dial(%q) = status %d, %v", clientID, status, err)
	}
	return ws
}

// dialStatus dials and returns the refusal status (0 if accepted).
func dialStatus(t *testing.T, emu *Emulator, arn, clientID string) int {
	t.Helper()
	u, err := emu.PresignViewerURL(arn, clientID)
	if err != nil {
		t.Fatal(err)
	}
	ws, status, err := dialErr(t, emu, u)
	if err == nil {
		_ = ws
		return 0
	}
	return status
}

// frame is a decoded service frame.
type frame struct {
	MessageType    string `json:"messageType"`
	MessagePayload string `json:"messagePayload"`
	SenderClientID string `json:"senderClientId"`
	StatusResponse *struct {
		CorrelationID string `json:"correlationId"`
		ErrorType     string `json:"errorType"`
		StatusCode    string `json:"statusCode"`
	} `json:"statusResponse"`
	raw string
}

// read reads the next frame, failing after 10 s.
func read(t *testing.T, ws *websocket.Conn) frame {
	t.Helper()
	f, err := readErr(t, ws, 10*time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return f
}

func readErr(t *testing.T, ws *websocket.Conn, timeout time.Duration) (frame, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	typ, data, err := ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	if typ != websocket.MessageText {
		return frame{}, errors.New("binary frame")
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, err
	}
	f.raw = string(data)
	return f, nil
}

// send writes a raw text frame.
func send(t *testing.T, ws *websocket.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// msg builds a JS-SDK-style frame.
func msg(action, payload, recipient, correlation string) string {
	m := struct {
		Action            string `json:"action"`
		MessagePayload    string `json:"messagePayload"`
		RecipientClientID string `json:"recipientClientId,omitempty"`
		CorrelationID     string `json:"correlationId,omitempty"`
	}{action, payload, recipient, correlation}
	b, _ := json.Marshal(m)
	return string(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// closeStatus waits for the server to close ws and returns the close code
// (-1 for an abrupt close), failing the test after timeout.
func closeStatus(t *testing.T, ws *websocket.Conn, timeout time.Duration) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	code, reason := waitClosed(ctx, ws)
	if ctx.Err() != nil {
		t.Fatalf("connection still open after %v", timeout)
	}
	return code, reason
}

// waitClosed reads (and discards) frames until ws fails and returns the
// close code, or -1 and the error for an abrupt close. Safe to run in any
// goroutine.
func waitClosed(ctx context.Context, ws *websocket.Conn) (websocket.StatusCode, string) {
	for {
		_, _, err := ws.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		return -1, err.Error()
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
