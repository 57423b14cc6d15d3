package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun is acceptance 6: the command starts in under 2 s, prints where it
// listens and the demo channel ARN, and the admin API answers counters.
func TestRun(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-addr", "127.0.0.1:0", "-ca-out", caFile, "-log-level", "warn"}, pw, io.Discard)
		pw.Close()
		done <- err
	}()

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	listenRE := regexp.MustCompile(`listening on (https://127\.0\.0\.1:\d+)`)
	demoRE := regexp.MustCompile(`demo channel demo-camera: (arn:aws:kinesisvideo:us-west-2:111122223333:channel/demo-camera/\d{13})`)
	var endpoint, arn string
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for arn == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended early: %v", <-done)
			}
			if m := listenRE.FindStringSubmatch(l); m != nil {
				endpoint = m[1]
			}
			if m := demoRE.FindStringSubmatch(l); m != nil {
				arn = m[1]
			}
		case <-timeout.C:
			t.Fatal("no demo channel line within 10 s")
		}
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("ready after %v, want < 2 s", el)
	}
	if endpoint == "" {
		t.Fatal("no listening line before the demo channel line")
	}

	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("-ca-out: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("-ca-out wrote no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", endpoint+"/_emulator/counters", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET counters: %v", err)
	}
	var counters struct {
		Calls    map[string]int64 `json:"calls"`
		Connects map[string]int64 `json:"connects"`
	}
	err = json.NewDecoder(resp.Body).Decode(&counters)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || counters.Calls == nil {
		t.Errorf("GET /_emulator/counters = %d %+v %v", resp.StatusCode, counters, err)
	}

	cancel()
	for range lines { // drain until run closes the pipe
	}
	if err := <-done; err != nil {
		t.Errorf("run() = %v, want nil", err)
	}
}

func TestRunBadFlag(t *testing.T) {
	tests := []struct {
		give []string
		want string // in the error
	}{
		{give: []string{"-camera-mode", "nope"}, want: "-camera-mode"},
		{give: []string{"-camera-ip", "not-an-ip"}, want: "-camera-ip"},
		{give: []string{"-addr", "127.0.0.1:0", "-camera-ip", "198.51.100.7"}, want: "CameraIP"},
		{give: []string{"-addr", "127.0.0.1:0", "-turn-addr", "0.0.0.0:3478"}, want: "TURNAddr"},
		{give: []string{"-addr", "127.0.0.1:0", "-turn-addr", "127.0.0.1"}, want: "TURNAddr"},
	}
	for _, tt := range tests {
		err := run(t.Context(), tt.give, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want an error naming %s", tt.give, err, tt.want)
		}
	}
}

// TestREADMEListsEveryFlag keeps kvsemu/README.md's flag table and this
// command's doc comment true: each lists every flag, and no other.
func TestREADMEListsEveryFlag(t *testing.T) {
	var usage strings.Builder
	if err := run(t.Context(), []string{"-h"}, io.Discard, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run(-h) = %v, want flag.ErrHelp", err)
	}
	flags := names(regexp.MustCompile(`(?m)^  -([a-z-]+)`), usage.String())
	if len(flags) < 10 {
		t.Fatalf("parsed %d flags from the usage, want them all:\n%s", len(flags), usage.String())
	}
	readme, err := os.ReadFile("../../kvsemu/README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]bool{
		"kvsemu/README.md table": names(regexp.MustCompile("(?m)^\\| `-([a-z-]+)`"), string(readme)),
		"main.go doc comment":    names(regexp.MustCompile(`(?m)^//\t-([a-z-]+)`), string(src)),
	}
	for doc, listed := range docs {
		for f := range flags {
			if !listed[f] {
				t.Errorf("%s lacks -%s", doc, f)
			}
		}
		for f := range listed {
			if !flags[f] {
				t.Errorf("%s lists -%s, which is no flag", doc, f)
			}
		}
	}
}

// names returns the first submatch of every match of re in s.
func names(re *regexp.Regexp, s string) map[string]bool {
	out := make(map[string]bool)
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out[m[1]] = true
	}
	return out
}
