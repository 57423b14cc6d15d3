#!/usr/bin/env bash
# readme-grpcurl.sh: proves that every command of README.md's "## grpcurl"
# section works as written against `server -dev`.
#
# It builds the server, starts it with -dev on free loopback ports
# (127.0.0.1:0, the real ports read from the banner), and reads the dev API key
# from the banner. Then it runs every `grpcurl` and `curl` line of the
# section's ```sh block in order, each with bash, after replacing
# localhost:50051 and localhost:8080 with the real addresses. Like the README,
# it sets KEY to the dev API key, and SESSION to the session name that the
# CreateSession line returns. The block's other lines may only be those two
# placeholder assignments. It fails if any command fails. It installs
# grpcurl v1.9.4 when it is missing. Every wait is bounded, and the server
# is stopped however the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$(go env GOPATH)/bin:$PATH"
tmp=$(mktemp -d)
server_pid=""
failed=0

cleanup() {
  local rc=$?
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$tmp/server.log" ]; then
    echo "--- server log (tail) ---" >&2
    tail -n 40 "$tmp/server.log" >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "readme-grpcurl: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }
# shellcheck source=lib/devserver.sh
. "$(dirname "$0")/lib/devserver.sh"
# redact hides the dev API key, session tokens and TURN credentials.
redact() {
  sed -E -e "s/${KEY:-dev-unset}/\$KEY/g" \
    -e 's/("(sessionToken|session_token|credential|username)": *)"[^"]*"/\1"<redacted>"/g'
}

if ! command -v grpcurl >/dev/null; then
  say "installing grpcurl"
  go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4
fi

# --- the README's commands ---------------------------------------------------
# The ```sh block of "## grpcurl", with continuation lines joined.
block=$(awk '$0 == "## grpcurl" { on = 1; next } on && /^## / { exit }
  on && /^```sh$/ { code = 1; next } on && code && /^```$/ { exit } code' README.md |
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
[ -n "$block" ] || die "README.md has no \`\`\`sh block under ## grpcurl"
cmds=()
while IFS= read -r line; do
  case $line in
  '' | '#'*) ;;
  grpcurl\ * | curl\ *) cmds+=("$line") ;;
  KEY=* | SESSION=*) ;; # the placeholders this script sets itself
  *) die "README.md's grpcurl block has a line this script cannot run: $line" ;;
  esac
done <<<"$block"
n_grpcurl=$(printf '%s\n' "${cmds[@]}" | grep -c '^grpcurl ' || true)
[ "$n_grpcurl" -ge 4 ] || die "only $n_grpcurl grpcurl commands found under ## grpcurl"

# --- the server --------------------------------------------------------------
say "building the server"
go build -o "$tmp/server" ./cmd/server
start_dev_server "$tmp/server"
say "server ready: gRPC $GRPC, HTTP $HTTP; ${#cmds[@]} commands ($n_grpcurl grpcurl)"
export KEY

# --- run them ----------------------------------------------------------------
i=0
for cmd in "${cmds[@]}"; do
  i=$((i + 1))
  run=${cmd//localhost:50051/$GRPC}
  run=${run//localhost:8080/$HTTP}
  case $run in
  *localhost*) say "FAIL [$i] names an address other than localhost:50051 and localhost:8080: $cmd"; failed=1; continue ;;
  esac
  rc=0
  timeout -k 5 30 bash -euo pipefail -c "$run" >"$tmp/out.$i" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    say "FAIL [$i] (exit $rc): $cmd"
    redact <"$tmp/out.$i" | head -n 40 >&2
    failed=1
  else
    say "ok   [$i]: $cmd"
  fi
  if [[ $cmd == *ViewerSessionService/CreateSession* ]]; then
    SESSION=$(grep -o '"name": "sessions/[a-z0-9]*"' "$tmp/out.$i" | head -n 1 | cut -d'"' -f4 || true)
    [ -n "$SESSION" ] || { say "FAIL [$i]: no session name in CreateSession's reply"; failed=1; }
    export SESSION
  fi
done

[ "$failed" = 0 ] || die "some of README.md's grpcurl commands fail"
say "PASS"
