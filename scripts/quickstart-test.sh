#!/usr/bin/env bash
# quickstart-test.sh: proves README.md's Quickstart on a clean clone.
#
# It builds the server and viewerctl into a temporary directory and starts
# `server -dev` on free loopback ports (127.0.0.1:0, the real ports read from
# the banner), along with its dev API key. Then it runs the Quickstart's own
# `go run ./cmd/viewerctl ...` lines, taken from README.md, against that server:
#   - the watch line exits 0, reaches CONNECTED, and its packet counts grow;
#   - the -fault no-answer line (with shorter timers appended) shows attempt 1
#     timing out, the retry delay, attempt 2 on a different clientId, and the
#     ANSWER_TIMEOUT failure, and exits 1;
#   - the -network-change-after line (shortened) shows the move to 127.0.0.3,
#     RECOVERED, and packets flowing again from the new address;
#   - the sessions line lists the live session of a running watch, with a
#     REASON column;
#   - issue 16's viewerctl papercuts: one line per state change, no "0.0 fps"
#     lines, get and timeline of the watched session, the hint on a refused
#     connection, and what a duration is when -duration has no unit.
# Last, SIGTERM stops the server, which must exit 0. Every wait is bounded.
# Every process the script starts is stopped however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
failed=0

cleanup() {
  local rc=$? pid
  # Only the background jobs still running: a reaped pid may be reused.
  local -a pids
  mapfile -t pids < <(jobs -p)
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
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

say() { echo "quickstart-test: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }
# shellcheck source=lib/devserver.sh
. "$(dirname "$0")/lib/devserver.sh"
check() { # check DESCRIPTION COMMAND...: records a failure, goes on
  local what=$1
  shift
  if "$@"; then say "ok: $what"; else say "FAIL: $what"; failed=1; fi
}

# --- build and start ---------------------------------------------------------
say "building server and viewerctl"
go build -o "$tmp/server" ./cmd/server
go build -o "$tmp/viewerctl" ./cmd/viewerctl

start_dev_server "$tmp/server"
say "server ready: gRPC $GRPC, HTTP $HTTP"

# --- the README's lines ------------------------------------------------------
# quickstart_line PATTERN [EXCLUDE]: the one `go run ./cmd/viewerctl` line of
# the Quickstart section that matches the extended regexp PATTERN (and not
# EXCLUDE).
quickstart_line() {
  local lines
  lines=$(awk '$0 == "## Quickstart" { on = 1; next } on && /^## / { exit } on' README.md |
    grep -E '^go run \./cmd/viewerctl ' | grep -E -- "$1" | grep -vE -- "${2:-^$}" || true)
  [ "$(printf '%s' "$lines" | grep -c '^go run')" -eq 1 ] ||
    die "README.md's Quickstart needs exactly one viewerctl line matching '$1', found: ${lines:-none}"
  printf '%s\n' "$lines"
}

# viewerctl_args LINE: sets ARGS to a README line's viewerctl arguments, with
# $KEY filled in. The lines are simple: no quoting beyond "$KEY", no shell
# syntax, so no shell is needed to run them.
viewerctl_args() {
  local line=${1#go run ./cmd/viewerctl }
  line=${line//\"\$KEY\"/$KEY}
  line=${line//\$KEY/$KEY}
  case $line in
  *[\"\'\$\`\;\&\|\<\>\(\)\\]*) die "README line too clever to run without a shell: $1" ;;
  esac
  read -r -a ARGS <<<"$line"
}

# run_line NAME LINE [EXTRA FLAG...]: runs a README line with the built
# viewerctl against this server (later flags win, so EXTRA shortens timers),
# bounded to 90 s. Output in $tmp/NAME.out; exit code in RC.
run_line() {
  local name=$1 line=$2
  shift 2
  viewerctl_args "$line"
  say "running: viewerctl $(redact "${ARGS[*]}") $*"
  local -a to=(-addr "$GRPC")
  [ "${ARGS[0]}" != watch ] || to+=(-dev-http "http://$HTTP")
  # In the background, so that a signal to this script is handled at once
  # (bash runs traps only between commands, and wait is one).
  timeout -k 5 90 "$tmp/viewerctl" "${ARGS[@]}" "${to[@]}" "$@" >"$tmp/$name.out" 2>&1 &
  local pid=$!
  RC=0
  wait "$pid" || RC=$?
}

redact() { printf '%s' "${1//$KEY/\$KEY}"; }
show() { echo "--- viewerctl output ($1) ---" >&2; redact "$(cat "$tmp/$1.out")" >&2; echo >&2; }

# packets: the packet counts of the media lines on stdin, one a line.
packets() { awk '$2 == "media" && $3 == "packets" { print $4 }'; }

# growing FILE: FILE has at least 3 media lines whose packet counts never
# fall and end above the first.
growing() {
  packets <"$1" | awk 'NR == 1 { first = $1 } $1 < prev { bad = 1 } { prev = $1; n++ }
    END { exit !(n >= 3 && !bad && prev > first) }'
}

lacks() { ! grep -qF -- "$1" "$2"; }
is() { [ "$1" = "$2" ]; }
differ() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ]; }
at_least() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" -ge "$2" ]; }

# ms HH:MM:SS.mmm: milliseconds since midnight.
ms() { awk -F'[:.]' '{ print (($1 * 60 + $2) * 60 + $3) * 1000 + $4 }' <<<"$1"; }

# 1. The two-command live session.
watch_line=$(quickstart_line ' watch ' '-fault|-network-change-after')
run_line watch "$watch_line"
out=$tmp/watch.out
check "watch exits 0 (got $RC)" is "$RC" 0
check "watch reaches CONNECTED" grep -qE '^[0-9:.]+  CONNECTED ' "$out"
check "watch packet counts grow: $(packets <"$out" | tr '\n' ' ')" growing "$out"
check "watch closes the session" grep -q 'CLOSED_BY_BACKEND' "$out"
check "watch prints no API key" lacks "$KEY" "$out"
# Issue 16's viewerctl papercuts, on the same run.
one_line() { [ "$(grep -cF -- "$1" "$2")" = 1 ]; }
check "watch prints each state change on one line" one_line 'CONNECTING -> CONNECTED' "$out"
check "watch prints no 0.0 fps lines" lacks ' 0.0 fps' "$out"
session=$(grep -oE 'sessions/[a-z0-9]+' "$out" | head -1)
vctl() { # vctl NAME ARG...: the built viewerctl, bounded, output in $tmp/NAME.out
  local name=$1
  shift
  RC=0
  timeout -k 5 30 "$tmp/viewerctl" "$@" >"$tmp/$name.out" 2>&1 || RC=$?
}
vctl get get -addr "$GRPC" -api-key "$KEY" "${session:-sessions/none}"
check "get exits 0 (got $RC) and says why the session ended" grep -qE '^reason: +CLOSED_BY_BACKEND$' "$tmp/get.out"
vctl timeline timeline -addr "$GRPC" -api-key "$KEY" "${session:-sessions/none}"
check "timeline exits 0 (got $RC) and ends with CLOSED" sh -c 'tail -n 1 "$1" | grep -q " CLOSED: "' - "$tmp/timeline.out"
check "timeline prints each state change on one line" one_line 'CONNECTING -> CONNECTED' "$tmp/timeline.out"
vctl refused get -addr 127.0.0.1:1 -api-key "$KEY" "${session:-sessions/none}"
check "a refused connection gets the hint (exit $RC)" grep -qF 'is the server running at 127.0.0.1:1?' "$tmp/refused.out"
vctl nounit watch -addr "$GRPC" -api-key "$KEY" -channel demo-camera -duration 10
check "-duration 10 says what a duration is (exit $RC)" grep -qF -- '-duration "10": want a duration such as 10s' "$tmp/nounit.out"
[ "$failed" = 0 ] || { show watch; show get; show timeline; show refused; show nounit; }

# 2. The retry: -fault no-answer, with 1 s timers instead of the README's.
before=$failed
noanswer_line=$(quickstart_line '-fault no-answer')
run_line noanswer "$noanswer_line" -answer-timeout 1s -retry-delay 1s
out=$tmp/noanswer.out
check "no-answer exits 1 (got $RC)" is "$RC" 1
read -r t1 _ id1 < <(awk '$4 == 1 && $6 == "ANSWER_TIMEOUT:" { print $1, $4, $5; exit }' "$out") || true
read -r t2 _ id2 < <(awk '$4 == 2 && $6 == "ANSWER_TIMEOUT:" { print $1, $4, $5; exit }' "$out") || true
offer2=$(awk '$4 == 2 && $6 == "OFFER_SENT:" { print $1; exit }' "$out")
check "attempt 1 times out (clientId ${id1:-none})" grep -qE '^[0-9:.]+  AWAITING_ANSWER +attempt 1 .* ANSWER_TIMEOUT: ' "$out"
check "the retry waits: RETRYING, RETRY_SCHEDULED attempt 2 in 1s" \
  grep -qE '^[0-9:.]+  RETRYING +attempt 1 .* RETRY_SCHEDULED: .*attempt 2 in 1s' "$out"
check "attempt 2's offer leaves at least 1s after attempt 1 timed out (${t1:-?} -> ${offer2:-?})" \
  at_least "$( [ -n "${t1:-}" ] && [ -n "$offer2" ] && echo $(($(ms "$offer2") - $(ms "$t1"))))" 950
check "attempt 2 times out with a different clientId (${id2:-none})" differ "${id1:-}" "${id2:-}"
check "the failure is ANSWER_TIMEOUT, in plain words" \
  grep -q '^viewerctl: session FAILED: ANSWER_TIMEOUT (DeadlineExceeded): the camera did not answer' "$out"
check "the fault is cleared on exit" grep -qE '^[0-9:.]+  fault +cleared' "$out"
[ "$failed" = "$before" ] || show noanswer

# 3. The network change, shortened, with `viewerctl sessions` run meanwhile.
before=$failed
network_line=$(quickstart_line '-network-change-after')
sessions_line=$(quickstart_line 'sessions ')
viewerctl_args "$network_line"
say "running: viewerctl $(redact "${ARGS[*]}") -network-change-after 2s -ice-restart-timeout 1s -duration 8s"
timeout -k 5 90 "$tmp/viewerctl" "${ARGS[@]}" -addr "$GRPC" -dev-http "http://$HTTP" \
  -network-change-after 2s -ice-restart-timeout 1s -duration 8s >"$tmp/network.out" 2>&1 &
watch_pid=$!
for _ in $(seq 100); do # 20 s
  grep -qE '^[0-9:.]+  CONNECTED ' "$tmp/network.out" && break
  sleep 0.2
done
run_line sessions "$sessions_line"
check "sessions exits 0 (got $RC)" is "$RC" 0
check "sessions lists the live watch" grep -qE '^sessions/[a-z0-9]+ +viewerctl' "$tmp/sessions.out"
check "sessions has a REASON column" grep -qE '^NAME .* REASON$' "$tmp/sessions.out"
RC=0
wait "$watch_pid" || RC=$?
out=$tmp/network.out
check "network change exits 0 (got $RC)" is "$RC" 0
check "media flows from 127.0.0.2 first" grep -q ' via 127\.0\.0\.2:' "$out"
check "the client moves to 127.0.0.3" grep -q 'the client moved from 127.0.0.2 to 127.0.0.3' "$out"
check "the session recovers" grep -qE '^[0-9:.]+  CONNECTED .* RECOVERED: ' "$out"
last_before=$(sed '/the client moved from/q' "$out" | packets | tail -n 1)
last_after=$(sed '1,/RECOVERED: /d' "$out" | grep ' via 127\.0\.0\.3:' | packets | tail -n 1)
check "packets flow again from 127.0.0.3 (${last_before:-0} before, ${last_after:-none} after)" \
  at_least "${last_after:-}" "$((${last_before:-0} + 1))"
[ "$failed" = "$before" ] || { show network; show sessions; }

# 4. After those runs, /metrics shows the service's metrics with non-zero
# values (issue: operations).
curl -s --max-time 5 "http://$HTTP/metrics" > "$tmp/metrics.txt" || true
nonzero() { # nonzero METRIC-REGEX: some series of it has a value > 0
  grep -E "^($1)(\{[^}]*\})? " "$tmp/metrics.txt" | awk '$NF > 0 { found=1 } END { exit !found }'
}
for m in vss_sessions_ended_total vss_session_failures_total vss_signaling_attempts_total \
  vss_answer_latency_seconds_count vss_answer_timeouts_total vss_retries_total \
  vss_recovery_steps_total vss_outage_seconds_count vss_first_video_seconds_count vss_client_id_acquire_seconds_count \
  vss_client_id_collisions_total vss_kvs_calls_total grpc_server_handled_total; do
  check "/metrics has $m > 0" nonzero "$m"
done
# vss_sessions is a gauge of live sessions (0 now that all ended);
# vss_redis_errors_total needs -redis-url, which -dev does not use.
check "/metrics exposes the vss_sessions gauge" grep -q '^# TYPE vss_sessions gauge' "$tmp/metrics.txt"

# 5. SIGTERM: the server drains and exits 0.
kill -TERM "$server_pid"
for _ in $(seq 150); do # 30 s (the drain timeout is 20 s)
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
rc=0
if kill -0 "$server_pid" 2>/dev/null; then
  check "the server stops within 30s of SIGTERM" false
else
  wait "$server_pid" || rc=$?
  check "the server exits 0 after SIGTERM (got $rc)" [ "$rc" = 0 ]
fi

[ "$failed" = 0 ] || die "the README's Quickstart does not hold"
say "PASS"
