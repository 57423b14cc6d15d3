# syntax=docker/dockerfile:1
# The Viewer Session Service image: a static Go binary on distroless, run as
# the non-root user 65532.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t viewer-session:dev .
#
# For machines with a container engine. `make image` builds the same layout
# (static /server as entrypoint, user 65532:65532, CA certificates, ports
# 50051 and 8080) without one, from a base it assembles (deploy/image), and
# checks it; that is the image CI builds (docs/OPERATIONS.md, "The image").

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# -X main.version: `server -version` and the `serving` log line print it.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/server ./cmd/server

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="viewer-session" \
      org.opencontainers.image.description="Viewer Session Service: KVS WebRTC viewer signaling for thin clients, over gRPC" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/server /server
# distroless "nonroot", numeric so that Kubernetes can verify runAsNonRoot.
USER 65532:65532
# gRPC (grpc.health.v1 included); HTTP /metrics, /healthz, /readyz.
EXPOSE 50051 8080
ENTRYPOINT ["/server"]
