#!/usr/bin/env bash
# check-chart.sh: checks the Helm chart deploy/helm/viewer-session.
#   - helm lint --strict with each example values file;
#   - helm template with each example, every rendered object decoded strictly
#     into its Kubernetes API type by deploy/helm/chartcheck (unknown fields,
#     unknown kinds and duplicate keys fail);
#   - a few renders that must fail or must compute a given value;
#   - the chartcheck tests.
# Installs helm with `go install` when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion).
KUBE_VERSION=1.30.0
CHART=deploy/helm/viewer-session
CHECK_DIR=deploy/helm/chartcheck

gobin="$(go env GOBIN)"
export PATH="${gobin:+$gobin:}$(go env GOPATH)/bin:$PATH"
if ! command -v helm >/dev/null; then
  echo "check-chart: installing helm $HELM_VERSION with go install"
  go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$CHECK_DIR" && go build -o "$tmp/chartcheck" .)

render() { helm template vs "$CHART" --namespace viewer-session --kube-version "$KUBE_VERSION" "$@"; }
fail() { echo "check-chart: FAIL: $*" >&2; exit 1; }

examples=("$CHART"/examples/*.yaml)
[ "${#examples[@]}" -ge 3 ] || fail "expected the example values files in $CHART/examples"
for values in "${examples[@]}"; do
  echo "== $values"
  helm lint --strict --kube-version "$KUBE_VERSION" -f "$values" "$CHART"
  render -f "$values" >"$tmp/rendered.yaml"
  "$tmp/chartcheck" <"$tmp/rendered.yaml"
done

echo "== renders that must fail"
dev="$CHART/examples/dev.yaml"
must_fail() { # must_fail WHAT WANT ARGS...: helm template ARGS must fail with WANT in its error
  local what="$1" want="$2"
  shift 2
  if render "$@" >/dev/null 2>"$tmp/err"; then
    fail "$what: helm template succeeded"
  fi
  grep -qF -- "$want" "$tmp/err" || fail "$what: error lacks \"$want\": $(cat "$tmp/err")"
  echo "ok  $what"
}
must_fail "unknown value key (schema)" "additional properties 'drainTimeout' not allowed" -f "$dev" --set config.drainTimeout=20s
must_fail "bad duration (schema)" "/config/answerTimeout" -f "$dev" --set config.answerTimeout=30sec
must_fail "in-memory with 2 replicas" "serves one replica" -f "$dev" --set replicaCount=2
must_fail "no API key" "apiKeys" -f "$dev" --set 'apiKeys.keys=null'
must_fail "sentinel URL without master_name" "master_name" -f "$CHART/examples/prod-sentinel.yaml" --set redis.url=redis://sentinel:26379

echo "== chartcheck catches a misspelled field in the rendered chart"
render -f "$dev" | sed 's/terminationGracePeriodSeconds:/terminationGracePeriodSecond:/' >"$tmp/bad.yaml"
if "$tmp/chartcheck" <"$tmp/bad.yaml" >/dev/null 2>"$tmp/err"; then
  fail "chartcheck accepted terminationGracePeriodSecond"
fi
grep -qF 'unknown field "spec.template.spec.terminationGracePeriodSecond"' "$tmp/err" || fail "chartcheck: $(cat "$tmp/err")"
echo "ok  $(cat "$tmp/err")"

echo "== terminationGracePeriodSeconds = preStop sleep + drain + margin"
render -f "$dev" --set config.drainTimeoutSeconds=33,preStopSleepSeconds=4,terminationMarginSeconds=10 >"$tmp/grace.yaml"
grep -qx '      terminationGracePeriodSeconds: 47' "$tmp/grace.yaml" || fail "want terminationGracePeriodSeconds 47 (4+33+10)"
grep -qx '  VS_DRAIN_TIMEOUT: "33s"' "$tmp/grace.yaml" || fail 'want VS_DRAIN_TIMEOUT "33s"'
grep -qx '                seconds: 4' "$tmp/grace.yaml" || fail "want preStop sleep 4"
echo "ok  4 + 33 + 10 = 47, VS_DRAIN_TIMEOUT=\"33s\""

echo "== chartcheck tests"
(cd "$CHECK_DIR" && go vet ./... && go test -count=1 ./...)
echo "check-chart: ok"
