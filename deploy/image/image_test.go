package main

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeServer is a stand-in for cmd/server: same module and package path,
// a version variable stamped with -X, a -version flag printing what the
// real one prints.
const fakeServer = `package main

import (
	"flag"
	"fmt"
)

var version = "dev"

func main() {
	v := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *v {
		fmt.Println("server", version)
	}
}
`

// buildFake compiles fakeServer as module path mod, package cmd/server,
// with the given extra go build flags, and returns the binary's path.
func buildFake(t *testing.T, mod, version string, flags ...string) string {
	t.Helper()
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "cmd", "server"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module "+mod+"\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "cmd", "server", "main.go"), []byte(fakeServer), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "server")
	args := append([]string{"build", "-o", out, "-ldflags", "-s -w -X main.version=" + version}, flags...)
	cmd := exec.Command("go", append(args, "./cmd/server")...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build fake server: %v\n%s", err, b)
	}
	return out
}

// caDir writes n copies of one self-signed CA into a directory.
func caDir(t *testing.T, n int) string {
	t.Helper()
	src, err := filepath.Glob("/usr/share/ca-certificates/mozilla/*.crt")
	if err != nil || len(src) == 0 {
		t.Skip("no Debian CA certificates (apt-get install ca-certificates)")
	}
	pem, err := os.ReadFile(src[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, strings.Repeat("a", i+1)+".crt"), pem, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var (
	platform = "linux/" + runtime.GOARCH
	created  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func TestBuildAndCheck(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("runs the linux binary it builds")
	}
	bin := buildFake(t, "github.com/acme/viewersession", "v9.8.7", "-trimpath")
	opts := buildOptions{Binaries: map[string]string{platform: bin}, CADir: caDir(t, minCAs), Version: "v9.8.7", Revision: "abc", Created: created}
	out := filepath.Join(t.TempDir(), "image.tar")
	d1, err := build(opts, out)
	if err != nil {
		t.Fatalf("build() error = %v", err)
	}
	var report bytes.Buffer
	if err := checkArchive(out, "v9.8.7", &report); err != nil {
		t.Fatalf("checkArchive() error = %v\nreport:\n%s", err, &report)
	}
	for _, want := range []string{
		`entrypoint ["/server"]`,
		"user 65532:65532",
		"/etc/ssl/certs/ca-certificates.crt: 100 CA certificates",
		"static, CGO_ENABLED=0, -trimpath",
		"/server -version: server v9.8.7",
	} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("check report lacks %q:\n%s", want, &report)
		}
	}

	if err := checkArchive(out, "v9.8.8", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `tag (org.opencontainers.image.ref.name) "v9.8.7", want "v9.8.8"`) {
		t.Errorf("checkArchive(other version) error = %v, want a tag mismatch", err)
	}

	// The same inputs give the same image and the same archive.
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := build(opts, out)
	if err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || !bytes.Equal(first, second) {
		t.Errorf("rebuild: digest %s then %s, archives equal %v; want one digest and equal archives", d1, d2, bytes.Equal(first, second))
	}
}

func TestBuildIndex(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("uses two amd64 variants of one binary")
	}
	bin := buildFake(t, "github.com/acme/viewersession", "v1", "-trimpath")
	opts := buildOptions{
		Binaries: map[string]string{"linux/amd64": bin, "linux/amd64/v3": bin},
		CADir:    caDir(t, minCAs), Version: "v1", Created: created,
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	if _, err := build(opts, out); err != nil {
		t.Fatalf("build() error = %v", err)
	}
	var report bytes.Buffer
	if err := checkArchive(out, "v1", &report); err != nil {
		t.Fatalf("checkArchive() error = %v\n%s", err, &report)
	}
	if got := strings.Count(report.String(), "/server -version: server v1"); got != 2 {
		t.Errorf("report shows %d servers run, want 2 (one per index entry):\n%s", got, &report)
	}
	if !strings.Contains(report.String(), "application/vnd.oci.image.index.v1+json") {
		t.Errorf("report does not name an image index:\n%s", &report)
	}
}

func TestCheckImageRefuses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("runs the linux binary it builds")
	}
	good := buildFake(t, "github.com/acme/viewersession", "v2", "-trimpath")
	untrimmed := buildFake(t, "github.com/acme/viewersession", "v2")
	other := buildFake(t, "example.com/other", "v2", "-trimpath")
	cas := caDir(t, minCAs)

	image := func(t *testing.T, bin string, mutateConfig func(*v1.Config)) v1.Image {
		t.Helper()
		opts := buildOptions{CADir: cas, Version: "v2", Created: created}
		certs, err := caBundlePEM(cas)
		if err != nil {
			t.Fatal(err)
		}
		base, err := layerOf(created, baseFiles(certs))
		if err != nil {
			t.Fatal(err)
		}
		plat, _ := v1.ParsePlatform(platform)
		img, err := imageFor(opts, *plat, base, bin)
		if err != nil {
			t.Fatal(err)
		}
		if mutateConfig != nil {
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c := cf.Config
			mutateConfig(&c)
			if img, err = mutate.Config(img, c); err != nil {
				t.Fatal(err)
			}
		}
		// Through a layout and back, as checkArchive reads images.
		lp, err := layout.Write(t.TempDir(), empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := lp.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if img, err = lp.Image(d); err != nil {
			t.Fatal(err)
		}
		return img
	}

	tests := []struct {
		name    string
		bin     string
		config  func(*v1.Config)
		version string
		wantErr string
	}{
		{name: "good", bin: good, version: "v2"},
		{name: "root user", bin: good, version: "v2", config: func(c *v1.Config) { c.User = "0:0" }, wantErr: `user "0:0"`},
		{name: "user by name", bin: good, version: "v2", config: func(c *v1.Config) { c.User = "nonroot" }, wantErr: `user "nonroot"`},
		{name: "shell entrypoint", bin: good, version: "v2", config: func(c *v1.Config) { c.Entrypoint = []string{"/bin/sh", "-c"} }, wantErr: "entrypoint"},
		{name: "a cmd", bin: good, version: "v2", config: func(c *v1.Config) { c.Cmd = []string{"-dev"} }, wantErr: "no cmd"},
		{name: "port missing", bin: good, version: "v2", config: func(c *v1.Config) { delete(c.ExposedPorts, "8080/tcp") }, wantErr: "port 8080/tcp not exposed"},
		{name: "server reports another version", bin: good, version: "v3", wantErr: `-version printed "server v2\n"`},
		{name: "built without -trimpath", bin: untrimmed, version: "v2", wantErr: `build setting -trimpath=""`},
		{name: "not cmd/server", bin: other, version: "v2", wantErr: `built from "example.com/other/cmd/server"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := image(t, tt.bin, tt.config)
			if tt.version != "v2" {
				// The label says v2 too: only the binary can tell.
				img = image(t, tt.bin, func(c *v1.Config) { c.Labels["org.opencontainers.image.version"] = tt.version })
			}
			err := checkImage(img, tt.version, &bytes.Buffer{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkImage() error = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkImage() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "server")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	notPEM := t.TempDir()
	if err := os.WriteFile(filepath.Join(notPEM, "a.crt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    buildOptions
		wantErr string
	}{
		{"no binary", buildOptions{CADir: caDir(t, 1), Version: "v1"}, "no server binary"},
		{"bad tag", buildOptions{Binaries: map[string]string{platform: bin}, CADir: caDir(t, 1), Version: "v1+meta"}, "not a valid image tag"},
		{"no CA", buildOptions{Binaries: map[string]string{platform: bin}, CADir: t.TempDir(), Version: "v1"}, "no *.crt"},
		{"CA not PEM", buildOptions{Binaries: map[string]string{platform: bin}, CADir: notPEM, Version: "v1"}, "is not a PEM certificate"},
		{"bad platform", buildOptions{Binaries: map[string]string{"amd64": bin}, CADir: caDir(t, 1), Version: "v1"}, `platform "amd64": want os/arch`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := build(tt.opts, filepath.Join(t.TempDir(), "out.tar"))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("build() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestUntarRefusesEscapes(t *testing.T) {
	for _, name := range []string{"../evil", "/etc/evil", "a/../../evil"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		archive := filepath.Join(t.TempDir(), "bad.tar")
		if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := untar(archive, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a local path") {
			t.Errorf("untar(entry %q) error = %v, want \"not a local path\"", name, err)
		}
	}
}
