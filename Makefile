# Viewer Session Service build. `make test` runs every test against a real
# redis-server of its own; `make lint` runs every check CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
PROTOC    ?= protoc
BUF       := tools/node_modules/.bin/buf
PROTO_DIR := proto
PROTO_INC ?= /usr/include
MODULE    := $(shell $(GO) list -m)
TEST_FLAGS ?= -race -count=1 -timeout 15m
BENCH_FLAGS ?= -run '^$$' -bench . -benchmem -count 1 -timeout 10m

.PHONY: all build test lint proto bench chart quickstart-test readme-grpcurl test-net tools-protoc tools-buf redis-bin clean

all: build

build:
	$(GO) build ./...

# test: go test -race ./... with a real redis-server on a free port of its own,
# unless REDIS_URL is already set. scripts/with-redis.sh installs Debian's
# redis-server when the binary is missing and we are root.
test: redis-bin
	scripts/with-redis.sh $(GO) test $(TEST_FLAGS) ./...

bench: redis-bin
	scripts/with-redis.sh $(GO) test $(BENCH_FLAGS) ./...

lint: tools-buf
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(BUF) lint

# proto regenerates the Go code next to the .proto files; the generators are
# the versions pinned by go.mod's tool directives.
# chart: helm lint --strict and helm template for every example values file,
# each rendered object decoded strictly into its Kubernetes type.
chart:
	scripts/check-chart.sh

# quickstart-test: the README's quickstart on the real binaries (-dev server,
# viewerctl watch, the no-answer retry, a network change, SIGTERM).
quickstart-test:
	scripts/quickstart-test.sh

# readme-grpcurl: every grpcurl line of the README against a -dev server.
readme-grpcurl:
	scripts/readme-grpcurl.sh

# test-net: the real-network suite (e2e/realnet): the service and viewerctl in
# network namespaces, Wi-Fi lost, sockets killed, a Wi-Fi fade, against each
# camera mode; prints figure (e). Root (installs iproute2, nftables, procps
# when missing); skips with the reason where namespaces cannot be created.
test-net:
	scripts/test-net.sh

proto: tools-protoc
	$(GO) build -o bin/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	$(PROTOC) -I $(PROTO_DIR) -I $(PROTO_INC) \
	  --plugin=protoc-gen-go=bin/protoc-gen-go --plugin=protoc-gen-go-grpc=bin/protoc-gen-go-grpc \
	  --go_out=. --go_opt=module=$(MODULE) \
	  --go-grpc_out=. --go-grpc_opt=module=$(MODULE) \
	  $(PROTO_DIR)/viewersession/v1/*.proto

redis-bin:
	@command -v redis-server >/dev/null || scripts/install-deps.sh redis-server

tools-protoc:
	@command -v $(PROTOC) >/dev/null && [ -f $(PROTO_INC)/google/protobuf/duration.proto ] || \
	  scripts/install-deps.sh protobuf-compiler libprotobuf-dev

# tools-buf installs buf (pinned in tools/package.json and its lock) from
# npm. `npm install`, not `npm ci`: this npm writes locks without buf's
# optional per-platform packages, which `npm ci` then refuses.
tools-buf:
	@[ -x $(BUF) ] || (cd tools && npm install --no-audit --no-fund)

clean:
	rm -rf bin
