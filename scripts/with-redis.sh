#!/usr/bin/env bash
# with-redis.sh CMD...: runs CMD with REDIS_URL pointing at a redis-server of
# its own, on a free loopback port, with no persistence; stops it afterwards.
# When REDIS_URL is already set, runs CMD unchanged. The server's binary path
# is exported as REDIS_SERVER_BIN for tests that start their own servers.
set -euo pipefail
if ! command -v redis-server >/dev/null; then
  "$(dirname "$0")/install-deps.sh" redis-server
fi
export REDIS_SERVER_BIN="${REDIS_SERVER_BIN:-$(command -v redis-server)}"
if [ -n "${REDIS_URL:-}" ]; then
  exec "$@"
fi
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || \
  echo $(( 20000 + RANDOM % 20000 )))
"$REDIS_SERVER_BIN" --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
for _ in $(seq 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
# The server is gone before its directory goes: it writes its log as it
# stops, and a removal racing that write failed the whole command.
cleanup() {
  local status=$? pid
  pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -rf "$dir" || true
  exit "$status"
}
trap cleanup EXIT
export REDIS_URL="redis://127.0.0.1:$port/0"
echo "with-redis: redis-server on $REDIS_URL" >&2
"$@"
