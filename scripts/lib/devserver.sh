# shellcheck shell=bash
# start_dev_server BINARY: starts `BINARY -dev` on free loopback ports, its
# output in $tmp/server.log, and waits (bounded) until it is ready. Sets
# server_pid, GRPC (host:port), HTTP (host:port) and KEY (the dev API key
# read from its banner). Needs $tmp and a die function from the caller.
start_dev_server() {
  "$1" -dev -grpc-addr 127.0.0.1:0 -http-addr 127.0.0.1:0 >"$tmp/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do # 60 s
    grep -qs '^  dev API key ' "$tmp/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || die "the server exited before printing its banner"
    sleep 0.2
  done
  grep -q '^  dev API key ' "$tmp/server.log" || die "no banner within 60s"
  GRPC=$(awk '$1 == "gRPC" { print $2; exit }' "$tmp/server.log")
  HTTP=$(sed -n 's|^  metrics/health  http://\([^/]*\)/metrics$|\1|p' "$tmp/server.log" | head -n 1)
  KEY=$(awk '$1 == "dev" && $2 == "API" && $3 == "key" { print $4; exit }' "$tmp/server.log")
  [ -n "$GRPC" ] && [ -n "$HTTP" ] && [[ "$KEY" == dev-* ]] || die "cannot read gRPC/HTTP address and dev API key from the banner"
  for _ in $(seq 50); do # 10 s
    [ "$(curl -s --max-time 2 "http://$HTTP/readyz" || true)" = "ready" ] && return 0
    sleep 0.2
  done
  die "http://$HTTP/readyz not ready within 10s"
}
