package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// minCAs is a floor for the CA bundle: Debian's has about 140.
const minCAs = 100

// checkArchive opens the OCI layout archive and checks every image in it
// (see checkImage) for version. It writes one line per fact checked to
// out and returns every problem found, joined.
func checkArchive(archive, version string, out io.Writer) error {
	dir, err := os.MkdirTemp("", "image-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := untar(archive, dir); err != nil {
		return fmt.Errorf("%s: %w", archive, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return fmt.Errorf("%s: not an OCI image layout: %w", archive, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) != 1 {
		return fmt.Errorf("index.json has %d manifests, want 1", len(im.Manifests))
	}
	top := im.Manifests[0]
	if got := top.Annotations[refNameAnnotation]; got != version {
		return fmt.Errorf("index.json: tag (%s) %q, want %q", refNameAnnotation, got, version)
	}
	fmt.Fprintf(out, "ok  layout %s: %s %s, tag %s\n", filepath.Base(archive), top.MediaType, top.Digest, version)

	var errs []error
	switch top.MediaType {
	case types.OCIManifestSchema1:
		img, err := idx.Image(top.Digest)
		if err != nil {
			return err
		}
		errs = append(errs, checkImage(img, version, out))
	case types.OCIImageIndex:
		inner, err := idx.ImageIndex(top.Digest)
		if err != nil {
			return err
		}
		if err := validate.Index(inner); err != nil {
			return fmt.Errorf("image index %s: %w", top.Digest, err)
		}
		iim, err := inner.IndexManifest()
		if err != nil {
			return err
		}
		for _, d := range iim.Manifests {
			if d.Platform == nil {
				errs = append(errs, fmt.Errorf("index entry %s has no platform", d.Digest))
				continue
			}
			img, err := inner.Image(d.Digest)
			if err != nil {
				return err
			}
			if err := checkImage(img, version, out); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.Platform, err))
			}
		}
	default:
		return fmt.Errorf("index.json: media type %s, want an OCI image manifest or index", top.MediaType)
	}
	return errors.Join(errs...)
}

// checkImage checks one image: digests and sizes consistent, OCI media
// types, entrypoint, non-root user, labels, ports, the files of the base,
// and the server binary (static, built from cmd/server for the image's
// platform, and, when the platform is this machine's, reporting version
// when run with -version).
func checkImage(img v1.Image, version string, out io.Writer) error {
	if err := validate.Image(img); err != nil {
		return fmt.Errorf("invalid image: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	platform := cf.OS + "/" + cf.Architecture
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	ok := func(format string, args ...any) { fmt.Fprintf(out, "ok  "+platform+": "+format+"\n", args...) }

	if mt != types.OCIManifestSchema1 {
		fail("manifest media type %s, want %s", mt, types.OCIManifestSchema1)
	}
	if cf.OS != "linux" {
		fail("os %q, want linux", cf.OS)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{entrypoint}) || len(c.Cmd) > 0 {
		fail("entrypoint %q cmd %q, want [%s] and no cmd", c.Entrypoint, c.Cmd, entrypoint)
	} else {
		ok("entrypoint %q", c.Entrypoint)
	}
	if c.User != user {
		fail("user %q, want %q (numeric, non-root)", c.User, user)
	} else {
		ok("user %s", c.User)
	}
	if got := c.Labels["org.opencontainers.image.version"]; got != version {
		fail("label org.opencontainers.image.version %q, want %q", got, version)
	}
	for _, p := range exposedPorts {
		if _, found := c.ExposedPorts[p]; !found {
			fail("port %s not exposed", p)
		}
	}

	fsys, err := files(img)
	if err != nil {
		return err
	}
	errs = append(errs, checkBase(fsys, ok))

	bin, found := fsys[entrypoint]
	switch {
	case !found || bin.hdr.Typeflag != tar.TypeReg:
		fail("%s: missing or not a regular file", entrypoint)
	case bin.hdr.Uid != 0 || bin.hdr.Mode&0o022 != 0 || bin.hdr.Mode&0o001 == 0:
		fail("%s: owner %d mode %o, want root-owned, not writable by others, executable by all", entrypoint, bin.hdr.Uid, bin.hdr.Mode)
	default:
		errs = append(errs, checkBinary(bin.data, cf, version, ok))
	}
	return errors.Join(errs...)
}

// entry is one file of the image's flattened filesystem.
type entry struct {
	hdr  *tar.Header
	data []byte
}

// files flattens the image's layers (later layers win, whiteouts applied)
// into a map from absolute path to entry.
func files(img v1.Image) (map[string]entry, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	fsys := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fsys, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read filesystem: %w", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		fsys[cleanName(h.Name)] = entry{hdr: h, data: data}
	}
}

// checkBase checks the files the server needs from its base: the user in
// /etc/passwd and /etc/group, the CA bundle, a writable /tmp, and that
// there is no shell.
func checkBase(fsys map[string]entry, ok func(string, ...any)) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	uid, gid := fmt.Sprint(nonrootUID), fmt.Sprint(nonrootGID)
	if !hasLine(fsys["/etc/passwd"].data, func(f []string) bool { return len(f) == 7 && f[2] == uid && f[3] == gid }) {
		fail("/etc/passwd has no user %s:%s", uid, gid)
	} else if !hasLine(fsys["/etc/group"].data, func(f []string) bool { return len(f) == 4 && f[2] == gid }) {
		fail("/etc/group has no group %s", gid)
	} else {
		ok("/etc/passwd and /etc/group name user %s:%s", uid, gid)
	}
	if home, found := fsys["/home/nonroot"]; !found || home.hdr.Uid != nonrootUID {
		fail("/home/nonroot missing or not owned by %d", nonrootUID)
	}
	if tmp, found := fsys["/tmp"]; !found || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode&0o1777 != 0o1777 {
		fail("/tmp missing or not mode 1777")
	}
	for _, sh := range []string{"/bin/sh", "/bin/bash", "/usr/bin/sh"} {
		if _, found := fsys[sh]; found {
			fail("%s exists: the image has no shell", sh)
		}
	}
	if n, err := countCerts(fsys[caBundle].data); err != nil {
		fail("%s: %v", caBundle, err)
	} else if n < minCAs {
		fail("%s: %d certificates, want at least %d", caBundle, n, minCAs)
	} else {
		ok("%s: %d CA certificates", caBundle, n)
	}
	return errors.Join(errs...)
}

// hasLine reports whether a line of the colon-separated file b matches.
func hasLine(b []byte, match func([]string) bool) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if match(strings.Split(sc.Text(), ":")) {
			return true
		}
	}
	return false
}

// countCerts parses every PEM block of b as a certificate.
func countCerts(b []byte) (int, error) {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return n, fmt.Errorf("PEM block %q, want CERTIFICATE", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return n, err
		}
		n++
	}
	if len(bytes.TrimSpace(b)) > 0 {
		return n, errors.New("trailing data that is not PEM")
	}
	return n, nil
}

// checkBinary checks the server binary: built from cmd/server for the
// image's platform with CGO_ENABLED=0 and -trimpath, statically linked,
// and, on a machine of its platform, printing "server <version>" for
// -version.
func checkBinary(bin []byte, cf *v1.ConfigFile, version string, ok func(string, ...any)) error {
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("%s: no Go build information: %w", entrypoint, err)
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(entrypoint+": "+format, args...)) }
	if bi.Path != serverPackage {
		fail("built from %q, want %q", bi.Path, serverPackage)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": cf.OS, "GOARCH": cf.Architecture} {
		if settings[k] != want {
			fail("build setting %s=%q, want %q", k, settings[k], want)
		}
	}
	ef, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		fail("not an ELF executable: %v", err)
	} else {
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				fail("dynamically linked (has an ELF interpreter)")
			}
		}
	}
	if len(errs) == 0 {
		ok("%s: %s, %s, static, CGO_ENABLED=0, -trimpath", entrypoint, bi.Path, bi.GoVersion)
	}
	if cf.OS != runtime.GOOS || cf.Architecture != runtime.GOARCH {
		ok("%s -version not run: this machine is %s/%s", entrypoint, runtime.GOOS, runtime.GOARCH)
		return errors.Join(errs...)
	}
	got, err := runVersion(bin)
	if want := "server " + version + "\n"; err != nil || got != want {
		fail("-version printed %q (error %v), want %q", got, err, want)
	} else {
		ok("%s -version: %s", entrypoint, strings.TrimSpace(got))
	}
	return errors.Join(errs...)
}

// runVersion runs the binary with -version and an empty environment, and
// returns what it printed on stdout.
func runVersion(bin []byte) (string, error) {
	dir, err := os.MkdirTemp("", "image-server-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	exe := filepath.Join(dir, "server")
	if err := os.WriteFile(exe, bin, 0o700); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-version")
	cmd.Env = []string{}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// untar unpacks the layout archive into dir. Only directories and regular
// files with clean relative names are accepted.
func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q: not a local path", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: type %q, want a file or directory", h.Name, h.Typeflag)
		}
	}
}
