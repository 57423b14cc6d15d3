//go:build browser

package browsertest

import (
	"testing"
	"time"
)

// TestOfficialSDKCamera: a browser camera on the official KVS WebRTC JS SDK
// (SignalingClient as MASTER, the master sample's behaviour, Chromium's
// fake camera) on an emulator channel without a simulated camera; a viewer
// page gets its video through the service.
func TestOfficialSDKCamera(t *testing.T) {
	needBrowser(t)
	box := newBox(t)
	const kvs = "127.0.0.1:4567"
	startDevServer(t, box, boxIP+":8081", boxIP, boxIP, "-dev-kvs-addr", kvs)
	if err := postJSON(t.Context(), box, devHTTP+"/dev/emulator/channels", map[string]any{"name": "browser-camera", "messageTtlSeconds": 60}, nil); err != nil {
		t.Fatal(err)
	}
	d := startDriver(t, box, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
	d.call("open", map[string]any{"page": "cam", "url": pagesURL + "/camera.html?endpoint=" + queryEscape("https://"+kvs) +
		"&region=us-west-2&channel=browser-camera&akid=AKIDEMULATOR&secret=emulator-secret"})
	camFrom := 0
	open := d.wait("cam", &camFrom, 20*time.Second, "the SDK's signaling open as MASTER", func(e pageEvent) bool {
		if e.kind() == "camera-error" {
			t.Fatalf("camera page: %s", e.str("message"))
		}
		return e.kind() == "camera-open"
	})

	s := mintSession(t, box, webURL, "browser-camera", "sdk-viewer")
	d.call("open", map[string]any{"page": "v", "url": viewerURL(pagesURL, webURL, "connect", s)})
	from := 0
	v := d.waitVideo("v", &from, 30)
	answered := d.wait("cam", &camFrom, time.Second, "the camera's answer", func(e pageEvent) bool { return e.kind() == "camera-answered" })
	media := d.wait("v", new(int), time.Second, "a media report", func(e pageEvent) bool { return e.kind() == "media" && e.num("frameWidth") > 0 })
	t.Logf("official SDK camera (master on %s): answered %s; viewer: frames decoded %v, time to first frame %.0f ms, %vx%v %s",
		open.str("channelARN"), answered.str("remoteClientId"), v.frames, v.firstFrameMs, media.num("frameWidth"), media.num("frameHeight"), media.str("codec"))
}
