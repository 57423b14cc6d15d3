#!/usr/bin/env bash
# test-net.sh: the real-network suite (e2e/realnet, build tag realnet): the
# service and viewerctl in network namespaces of their own, Wi-Fi taken down,
# sockets killed, a Wi-Fi fade. Needs root for the namespaces; as root it
# installs the tools it drives (iproute2, nftables, procps) when missing.
# Without root the suite skips and says so. Afterwards it checks that the run
# left no namespace behind.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
{ command -v ip && command -v ss; } >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v sysctl >/dev/null || missing+=(procps)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
  scripts/install-deps.sh "${missing[@]}"
fi

prefix=vsrn # e2e/realnet's nsPrefix
# make lint's vet and staticcheck do not see files behind the build tag.
${GO:-go} vet -tags realnet ./e2e/realnet/
${GO:-go} tool staticcheck -tags realnet ./e2e/realnet/

status=0
${GO:-go} test -tags realnet -count=1 -timeout 8m -v ./e2e/realnet/ || status=$?

# Every namespace of the suite is named vsrn<pid>-...; one whose process is
# gone was leaked by this run (or an earlier killed one): say so and fail.
if command -v ip >/dev/null && [ "$(id -u)" = 0 ]; then
  leaked=()
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix" || true); do
    pid=${ns#"$prefix"}
    pid=${pid%%-*}
    if [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
      leaked+=("$ns")
    fi
  done
  if [ "${#leaked[@]}" -gt 0 ]; then
    echo "test-net: namespaces left behind: ${leaked[*]}" >&2
    status=1
  else
    echo "test-net: no namespace left behind (ip netns list has no $prefix* of a finished run)"
  fi
fi
exit "$status"
