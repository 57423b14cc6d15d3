//go:build browser

package browsertest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestREADMEViewerPage runs the viewer page of the README's Browsers
// section as it is written, with only its backend call and endpoint
// pointed at a -dev server, and checks that its video plays.
func TestREADMEViewerPage(t *testing.T) {
	needBrowser(t)
	readme, err := os.ReadFile(filepath.Join(webDir, "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Browsers\n")
	if !ok {
		t.Fatal("README.md has no Browsers section")
	}
	_, page, ok := strings.Cut(section, "```html\n")
	page, _, ok2 := strings.Cut(page, "```")
	if !ok || !ok2 {
		t.Fatal("the README's Browsers section has no html block")
	}
	for old, repl := range map[string]string{
		`fetch("/my-backend/session", { method: "POST" })`: `fetch("` + webURL + `/dev/session", { method: "POST", body: '{"viewer_id":"readme"}' })`,
		`"https://vs.example.com"`:                         `"` + webURL + `"`,
	} {
		if !strings.Contains(page, old) {
			t.Fatalf("the README's viewer page no longer contains %s: update this test with it", old)
		}
		page = strings.Replace(page, old, repl, 1)
	}
	if err := os.WriteFile(filepath.Join(webDir, ".build", "pages", "readme.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	box := newBox(t)
	startDevServer(t, box, boxIP+":8081", boxIP, boxIP)
	d := startDriver(t, box)
	d.call("open", map[string]any{"page": "readme", "url": pagesURL + "/readme.html"})
	from := 0
	d.wait("readme", &from, 20*time.Second, "the page logging CONNECTED", func(e pageEvent) bool {
		return e.kind() == "console" && e.str("text") == "CONNECTED"
	})
	frames := d.call("eval", map[string]any{"page": "readme", "expr": `new Promise((resolve) => {
		const v = document.getElementById("video");
		const deadline = performance.now() + 10000;
		const step = () => {
			const n = v.getVideoPlaybackQuality().totalVideoFrames;
			if (n >= 30 || performance.now() > deadline) resolve(n); else v.requestVideoFrameCallback(step);
		};
		v.requestVideoFrameCallback(step);
		setTimeout(() => resolve(v.getVideoPlaybackQuality().totalVideoFrames), 10000);
	})`})
	if n, err := strconv.Atoi(strings.TrimSpace(string(frames))); err != nil || n < 30 {
		t.Fatalf("the README's page showed %s video frames within 10 s; want 30", frames)
	}
	t.Logf("README viewer page: CONNECTED, %s frames shown", frames)
}
