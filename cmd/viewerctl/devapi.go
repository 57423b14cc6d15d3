package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/acme/viewersession/kvsemu"
)

// devAPI calls the KVS emulator's admin API through the dev server's
// /dev/emulator/ proxy (`go run ./cmd/server -dev` only).
type devAPI struct {
	base string // e.g. http://localhost:8080/dev/emulator
	hc   *http.Client
}

func newDevAPI(httpBase string) devAPI {
	return devAPI{
		base: strings.TrimSuffix(httpBase, "/") + "/dev/emulator",
		hc:   &http.Client{Timeout: 10 * time.Second},
	}
}

// fault applies one emulator fault.
func (d devAPI) fault(ctx context.Context, req kvsemu.FaultRequest) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, d.base+"/faults", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", errDevAPI, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	return d.do(hr, nil)
}

// cameraMode returns the mode of the channel's simulated camera ("" when
// none runs).
func (d devAPI) cameraMode(ctx context.Context, arn string) (string, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/channels", nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errDevAPI, err)
	}
	var resp struct {
		Channels []kvsemu.ChannelState `json:"channels"`
	}
	if err := d.do(hr, &resp); err != nil {
		return "", err
	}
	for _, ch := range resp.Channels {
		if ch.ARN == arn && ch.Camera != nil && ch.Camera.Running {
			return string(ch.Camera.Mode), nil
		}
	}
	return "", nil
}

// do sends hr and decodes a 200 answer into v (if not nil); any other
// status is an error carrying the emulator's {"error": ...} message.
func (d devAPI) do(hr *http.Request, v any) error {
	resp, err := d.hc.Do(hr)
	if err != nil {
		return fmt.Errorf("%w: %w (is the server running with -dev, and -dev-http right?)", errDevAPI, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errDevAPI, hr.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusNotFound && e.Error == "" {
			msg += " (the server has no emulator proxy: start it with -dev)"
		}
		return fmt.Errorf("%w: %s %s: %s: %s", errDevAPI, hr.Method, hr.URL.Path, resp.Status, msg)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %w", errDevAPI, hr.URL.Path, err)
	}
	return nil
}
