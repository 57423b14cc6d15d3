#!/usr/bin/env bash
# build-image.sh: builds the server's container image without a container
# engine or registry (make image), then checks it:
#   - the static server (CGO_ENABLED=0, -trimpath, -X main.version) for each
#     platform of IMAGE_PLATFORMS (default: this machine's, linux/<arch>);
#   - deploy/image assembles an OCI image layout archive, IMAGE_OUT (default
#     bin/viewer-session.oci.tar): a distroless-like base (user 65532, the
#     CA certificates of Debian's ca-certificates package, /tmp) and
#     /server, every timestamp the commit's, so a commit gives one digest;
#   - deploy/image check reopens the archive and verifies digests,
#     entrypoint, user, labels, base files, and that /server is static, was
#     built from cmd/server and prints "server $VERSION" for -version;
#   - deploy/image's own tests.
# VERSION defaults to `git describe --tags --always --dirty`.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
PLATFORMS="${IMAGE_PLATFORMS:-linux/$(go env GOARCH)}"
OUT="${IMAGE_OUT:-bin/viewer-session.oci.tar}"
CA_DIR=/usr/share/ca-certificates/mozilla

start=$SECONDS
if ! compgen -G "$CA_DIR/*.crt" >/dev/null; then
  scripts/install-deps.sh ca-certificates
fi
# The commit's time, so that rebuilding a commit gives the same image.
created="$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo 1970-01-01T00:00:00Z)"
revision="$(git rev-parse HEAD 2>/dev/null || true)"

mkdir -p bin/image "$(dirname "$OUT")"
args=()
for platform in ${PLATFORMS//,/ }; do
  os="${platform%%/*}" arch="${platform#*/}"
  echo "image: go build ./cmd/server for $os/$arch, version $VERSION"
  CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath \
    -ldflags "-s -w -X main.version=$VERSION" -o "bin/image/$os-$arch/server" ./cmd/server
  args+=(-binary "$platform=bin/image/$os-$arch/server")
done
(cd deploy/image && go build -o ../../bin/image/imagetool .)
bin/image/imagetool build -out "$OUT" -version "$VERSION" -revision "$revision" -created "$created" \
  -ca-dir "$CA_DIR" "${args[@]}"
bin/image/imagetool check -image "$OUT" -version "$VERSION"

echo "== deploy/image tests"
(cd deploy/image && go vet ./... && go test -count=1 ./...)
echo "build-image: ok in $((SECONDS - start)) s ($OUT, $(du -h "$OUT" | cut -f1))"
