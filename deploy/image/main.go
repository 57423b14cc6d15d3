// Command image builds the Viewer Session Service's container image as an
// OCI image layout archive, without a container engine or registry, and
// checks one (scripts/build-image.sh runs both; `make image`):
//
//	image build -out bin/viewer-session.oci.tar -version v1.2.3 \
//	    -binary linux/amd64=bin/image/linux-amd64/server \
//	    [-binary linux/arm64=...] [-ca-dir /usr/share/ca-certificates/mozilla] \
//	    [-created 2026-01-02T15:04:05Z] [-revision <git commit>]
//	image check -image bin/viewer-session.oci.tar -version v1.2.3
//
// The image is two layers over nothing: a distroless-like base (/etc/passwd
// and /etc/group with the non-root user 65532, Debian's CA certificates,
// /tmp; no shell) and the static server binary at /server, the entrypoint,
// run as 65532:65532. Every timestamp is -created, so the same inputs give
// the same digest. The archive is what `skopeo copy oci-archive:...`,
// `crane push`, `podman load` and `docker load` (Docker 25+) take.
//
// It lives in its own module, like deploy/helm/chartcheck, so that
// go-containerregistry stays out of the service's go.mod.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "image:", err)
		}
		os.Exit(2)
	}
}

const usage = `usage:
  image build -out FILE -version V -binary OS/ARCH=PATH... [-ca-dir DIR] [-created RFC3339] [-revision R]
  image check -image FILE -version V`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "build":
		return runBuild(args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func runBuild(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "the OCI layout archive to write")
	opts := buildOptions{Binaries: map[string]string{}}
	fs.StringVar(&opts.Version, "version", "", "the server's version (label, tag, -version output)")
	fs.StringVar(&opts.Revision, "revision", "", "the source's VCS revision (label)")
	fs.StringVar(&opts.CADir, "ca-dir", "/usr/share/ca-certificates/mozilla", "directory of the CA certificates (*.crt) to bundle")
	created := fs.String("created", "1970-01-01T00:00:00Z", "timestamp of every file and of the config (RFC 3339)")
	fs.Func("binary", "OS/ARCH=PATH: the server binary for a platform (repeatable)", func(s string) error {
		plat, path, found := strings.Cut(s, "=")
		if !found || plat == "" || path == "" {
			return errors.New("want OS/ARCH=PATH")
		}
		if _, dup := opts.Binaries[plat]; dup {
			return fmt.Errorf("platform %s given twice", plat)
		}
		opts.Binaries[plat] = path
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || opts.Version == "" || len(opts.Binaries) == 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("build needs -out, -version and at least one -binary")
	}
	t, err := time.Parse(time.RFC3339, *created)
	if err != nil {
		return fmt.Errorf("-created: %w", err)
	}
	opts.Created = t.UTC()
	digest, err := build(opts, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "image: wrote %s: %s (tag %s)\n", *out, digest, opts.Version)
	return nil
}

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	archive := fs.String("image", "", "the OCI layout archive to check")
	version := fs.String("version", "", "the version the server must report")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *archive == "" || *version == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("check needs -image and -version")
	}
	if err := checkArchive(*archive, *version, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "image: %s ok\n", *archive)
	return nil
}
