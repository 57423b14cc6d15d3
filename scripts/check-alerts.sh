#!/usr/bin/env bash
# check-alerts.sh [RULE_FILE...]: checks the chart's alerts with promtool:
#   - promtool check rules on deploy/helm/viewer-session/files/alerts.yaml
#     and on each RULE_FILE (check-chart.sh passes the rules of the rendered
#     PrometheusRule);
#   - promtool test rules deploy/helm/tests/alerts_test.yaml: every alert
#     fires on its case, with its labels and annotations, and stays quiet on
#     the others.
# promtool comes from Debian's prometheus package: when it is not on the
# PATH, the package is downloaded with apt-get and only /usr/bin/promtool is
# unpacked into bin/ (installing the package would pull in the server, its
# web assets and a service).
set -euo pipefail
cd "$(dirname "$0")/.."

RULES=deploy/helm/viewer-session/files/alerts.yaml
TESTS=deploy/helm/tests/alerts_test.yaml

promtool="$(command -v promtool || true)"
if [ -z "$promtool" ]; then
  promtool=bin/promtool
  if [ ! -x "$promtool" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "check-alerts: promtool is missing: apt-get install prometheus (it ships promtool), or run as root" >&2
      exit 1
    fi
    echo "check-alerts: installing promtool from Debian's prometheus package"
    dl="$(mktemp -d)"
    trap 'rm -rf "$dl"' EXIT
    chown _apt "$dl" 2>/dev/null || true
    if ! (cd "$dl" && apt-get download -qq prometheus 2>/dev/null); then
      apt-get update -qq
      (cd "$dl" && apt-get download -qq prometheus)
    fi
    mkdir -p bin
    dpkg-deb --fsys-tarfile "$dl"/prometheus_*.deb | tar -xO ./usr/bin/promtool >bin/promtool.tmp
    chmod +x bin/promtool.tmp
    mv bin/promtool.tmp "$promtool"
  fi
fi
"$promtool" --version 2>&1 | head -1

"$promtool" check rules "$RULES" "$@"
"$promtool" test rules "$TESTS"
echo "check-alerts: ok"
