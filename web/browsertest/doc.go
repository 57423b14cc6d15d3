// Package browsertest holds the browser tests of web/ (build tag browser,
// run by `make test-web`): headless Debian Chromium, driven by playwright-core
// through driver.mjs, plays the camera through the real server binary and
// the ViewerSession library, inside throwaway network namespaces
// (internal/netns; Chromium gathers no ICE candidates with only loopback).
//
// The Go side owns the scenario: it builds the binaries, makes the
// namespaces and links, starts and signals the processes, changes the
// network, and asserts on what the pages report (decoded frames, the
// library's events, typed errors); driver.mjs is only a remote control
// (JSON lines on stdin and stdout) and serves the test pages.
package browsertest
