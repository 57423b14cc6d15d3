package main

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed facts; check verifies each of them.
const (
	// entrypoint is where the server binary lives in the image.
	entrypoint = "/server"
	// nonrootUID and nonrootGID are distroless's "nonroot": numeric, so that
	// Kubernetes can verify runAsNonRoot, and the chart's runAsUser.
	nonrootUID = 65532
	nonrootGID = 65532
	// caBundle is where Go's crypto/x509 looks first on Linux.
	caBundle = "/etc/ssl/certs/ca-certificates.crt"
	// serverPackage is the import path the binary must have been built from.
	serverPackage = "github.com/acme/viewersession/cmd/server"
	// refNameAnnotation tags the layout's one manifest (what `skopeo copy
	// oci-archive:...` and `crane push` read the tag from).
	refNameAnnotation = "org.opencontainers.image.ref.name"
)

// user is the image's configured user, uid:gid.
var user = fmt.Sprintf("%d:%d", nonrootUID, nonrootGID)

// exposedPorts are the server's default gRPC and HTTP ports.
var exposedPorts = []string{"50051/tcp", "8080/tcp"}

// buildOptions is everything an image is made of.
type buildOptions struct {
	// Binaries maps a platform ("linux/amd64") to the server binary built
	// for it. Several platforms make a multi-platform image index.
	Binaries map[string]string
	// CADir holds the PEM certificates (*.crt) of the CA bundle: Debian's
	// /usr/share/ca-certificates/mozilla, the ca-certificates package's own
	// files, without the host's local additions.
	CADir string
	// Version is the server's version (its -version output, the image
	// label and the layout's tag).
	Version string
	// Revision is the source's VCS revision (a label); may be empty.
	Revision string
	// Created is every timestamp in the image (files, config, history):
	// the same inputs give the same digests.
	Created time.Time
}

// build writes the OCI image layout of opts as a tar archive to out and
// returns the digest of the layout's one manifest (an image, or an index
// of images when there are several platforms).
func build(opts buildOptions, out string) (v1.Hash, error) {
	if len(opts.Binaries) == 0 {
		return v1.Hash{}, errors.New("no server binary")
	}
	if !validTag(opts.Version) {
		return v1.Hash{}, fmt.Errorf("version %q: not a valid image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})", opts.Version)
	}
	certs, err := caBundlePEM(opts.CADir)
	if err != nil {
		return v1.Hash{}, err
	}
	base, err := layerOf(opts.Created, baseFiles(certs))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("base layer: %w", err)
	}

	platforms := slices.Sorted(maps.Keys(opts.Binaries))
	var images []v1.Image
	var descs []v1.Platform
	for _, p := range platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil || plat.OS == "" || plat.Architecture == "" {
			return v1.Hash{}, fmt.Errorf("platform %q: want os/arch", p)
		}
		img, err := imageFor(opts, *plat, base, opts.Binaries[p])
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%s: %w", p, err)
		}
		images = append(images, img)
		descs = append(descs, *plat)
	}

	dir, err := os.MkdirTemp("", "image-layout-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	tag := layout.WithAnnotations(map[string]string{refNameAnnotation: opts.Version})
	var digest v1.Hash
	if len(images) == 1 {
		if err := lp.AppendImage(images[0], tag, layout.WithPlatform(descs[0])); err != nil {
			return v1.Hash{}, err
		}
		digest, err = images[0].Digest()
	} else {
		idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		for i, img := range images {
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
				Add:        img,
				Descriptor: v1.Descriptor{Platform: &descs[i]},
			})
		}
		if err := lp.AppendIndex(idx, tag); err != nil {
			return v1.Hash{}, err
		}
		digest, err = idx.Digest()
	}
	if err != nil {
		return v1.Hash{}, err
	}
	if err := tarDir(dir, out, opts.Created); err != nil {
		return v1.Hash{}, err
	}
	return digest, nil
}

// imageFor is the image of one platform: the base layer, then the binary.
func imageFor(opts buildOptions, plat v1.Platform, base v1.Layer, binary string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	app, err := layerOf(opts.Created, []file{{name: entrypoint[1:], mode: 0o555, data: bin}})
	if err != nil {
		return nil, fmt.Errorf("server layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: opts.Created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "deploy/image: /etc/passwd, /etc/group, CA certificates, /tmp"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: created, CreatedBy: "deploy/image: " + entrypoint + " (CGO_ENABLED=0 go build -trimpath ./cmd/server)"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = created
	cf.Config = v1.Config{
		User:         user,
		Entrypoint:   []string{entrypoint},
		WorkingDir:   "/",
		Env:          []string{"PATH=/"},
		ExposedPorts: map[string]struct{}{},
		Labels:       labels(opts),
	}
	for _, p := range exposedPorts {
		cf.Config.ExposedPorts[p] = struct{}{}
	}
	return mutate.ConfigFile(img, cf)
}

// labels are the OCI annotations of the image config.
func labels(opts buildOptions) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "viewer-session",
		"org.opencontainers.image.description": "Viewer Session Service: KVS WebRTC viewer signaling for thin clients, over gRPC",
		"org.opencontainers.image.version":     opts.Version,
		"org.opencontainers.image.created":     opts.Created.UTC().Format(time.RFC3339),
	}
	if opts.Revision != "" {
		l["org.opencontainers.image.revision"] = opts.Revision
	}
	return l
}

// file is one entry of a layer: a regular file, or a directory when dir.
type file struct {
	name     string // relative to /, no leading slash
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// baseFiles is the distroless-like base: users, CA certificates, /tmp.
// No shell, no package manager; no tzdata (the server loads no time zone).
func baseFiles(certs []byte) []file {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonrootUID, nonrootGID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonrootGID)
	return []file{
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		// Go's resolver reads it: /etc/hosts before DNS, as glibc would.
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/ssl", mode: 0o755, dir: true},
		{name: "etc/ssl/certs", mode: 0o755, dir: true},
		{name: caBundle[1:], mode: 0o644, data: certs},
		{name: "home", mode: 0o755, dir: true},
		{name: "home/nonroot", mode: 0o700, uid: nonrootUID, gid: nonrootGID, dir: true},
		{name: "root", mode: 0o700, dir: true},
		{name: "tmp", mode: 0o1777, dir: true},
	}
}

// caBundlePEM concatenates the *.crt files of dir, sorted by name, after
// checking that each is a PEM certificate.
func caBundlePEM(dir string) ([]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("CA certificates: no *.crt in %s (apt-get install ca-certificates)", dir)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("CA certificates: %s is not a PEM certificate", n)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, fmt.Errorf("CA certificates: %s: %w", n, err)
		}
		buf.Write(bytes.TrimSpace(b))
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// layerOf is a gzip-compressed OCI layer of files, every timestamp set to
// mtime, owners numeric only.
func layerOf(mtime time.Time, files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.gid,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if f.dir {
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// tarDir archives the layout directory dir into out: sorted entries, fixed
// times, no owners, so that the archive is as reproducible as the layout.
func tarDir(dir, out string, mtime time.Time) (err error) {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Mode: 0o644, Format: tar.FormatPAX}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h.Typeflag, h.Size = tar.TypeReg, int64(len(b))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// validTag reports whether s is a valid OCI/Docker tag.
func validTag(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	}) < 0
}

// cleanName is the absolute, clean path of a tar entry name.
func cleanName(name string) string { return path.Clean("/" + name) }
