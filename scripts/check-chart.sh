#!/usr/bin/env bash
# check-chart.sh: checks the Helm chart deploy/helm/viewer-session (make chart).
#   - helm lint --strict and helm template with each example values file and
#     with deploy/helm/tests/every-value.yaml (every value set), every
#     rendered object decoded strictly into its Kubernetes API type (or its
#     CRD's Go type) by deploy/helm/chartcheck (unknown fields, unknown kinds
#     and duplicate keys fail); lint also renders NOTES.txt;
#   - renders that must fail, and renders that must compute a given value;
#   - the chartcheck tests (among them: the generated token key survives an
#     upgrade through helm's lookup; every-value.yaml sets every value);
#   - scripts/check-alerts.sh: promtool check rules (the file and the
#     rendered PrometheusRule) and promtool test rules.
# Installs helm with `go install` when it is missing. Every helm command
# passes --kube-version: helm's default Kubernetes version may be older
# than the chart's kubeVersion.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

HELM_VERSION=v3.22.0
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion).
KUBE_VERSION=1.30.0
CHART=deploy/helm/viewer-session
CHECK_DIR=deploy/helm/chartcheck
EVERY=deploy/helm/tests/every-value.yaml

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
[ "${#examples[@]}" -ge 5 ] || fail "expected the example values files in $CHART/examples"
for values in "${examples[@]}" "$EVERY"; do
  echo "== $values"
  helm lint --strict --kube-version "$KUBE_VERSION" -f "$values" "$CHART"
  render -f "$values" >"$tmp/rendered.yaml"
  "$tmp/chartcheck" <"$tmp/rendered.yaml"
done
# The rules Prometheus gets from the every-value render (alert labels,
# runbook URLs, a disabled alert): promtool checks them below.
render -f "$EVERY" | "$tmp/chartcheck" -prometheus-rules "$tmp/rendered-rules.yaml" >/dev/null

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
must_fail "image digest not sha256 (schema)" "/image/digest" -f "$dev" --set image.digest=latest
must_fail "service type (schema)" "/service/type" -f "$dev" --set service.type=ExternalName
must_fail "hostname with a port (schema)" "/ingress/grpc/hosts/0" -f "$dev" --set ingress.enabled=true --set 'ingress.grpc.hosts={vss.example.com:443}'
must_fail "two probe handlers" "readinessProbe has 2 handlers (httpGet, grpc)" -f "$dev" --set readinessProbe.httpGet.path=/readyz --set readinessProbe.httpGet.port=metrics
must_fail "web Ingress without the web port" "set web.enabled" -f "$dev" --set ingress.enabled=true --set 'ingress.web.hosts={vss.example.com}'
must_fail "Ingress without hosts" "enabled without hosts" -f "$dev" --set ingress.enabled=true
must_fail "one host for gRPC and web" "is in both ingress.grpc.hosts and ingress.web.hosts" -f "$EVERY" --set 'ingress.web.hosts={vss.example.com}'
must_fail "routes without a Gateway" "the routes need a Gateway" -f "$dev" --set gateway.enabled=true --set 'gateway.grpc.hostnames={vss.example.com}'
must_fail "chart's Gateway without a certificate" "gateway.create.tlsSecretName" -f "$dev" --set gateway.enabled=true --set 'gateway.grpc.hostnames={vss.example.com}' --set gateway.create.enabled=true --set gateway.create.className=eg
must_fail "HPA without a target" "set targetCPUUtilizationPercentage or targetSessionsPerPod" -f "$CHART/examples/prod-sentinel.yaml" --set autoscaling.targetCPUUtilizationPercentage=0
must_fail "disabling an alert that does not exist" 'no alert "VSSNoSuchAlert"' -f "$dev" --set prometheusRule.enabled=true --set 'prometheusRule.disabledAlerts={VSSNoSuchAlert}'

echo "== chartcheck catches a misspelled field in the rendered chart"
render -f "$dev" | sed 's/terminationGracePeriodSeconds:/terminationGracePeriodSecond:/' >"$tmp/bad.yaml"
if "$tmp/chartcheck" <"$tmp/bad.yaml" >/dev/null 2>"$tmp/err"; then
  fail "chartcheck accepted terminationGracePeriodSecond"
fi
grep -qF 'unknown field "spec.template.spec.terminationGracePeriodSecond"' "$tmp/err" || fail "chartcheck: $(cat "$tmp/err")"
echo "ok  $(cat "$tmp/err")"
render -f "$EVERY" | sed 's/gatewayClassName:/gatewayClass:/' >"$tmp/bad.yaml"
if "$tmp/chartcheck" <"$tmp/bad.yaml" >/dev/null 2>"$tmp/err"; then
  fail "chartcheck accepted a Gateway's gatewayClass"
fi
grep -qF 'unknown field "spec.gatewayClass"' "$tmp/err" || fail "chartcheck: $(cat "$tmp/err")"
echo "ok  $(cat "$tmp/err")"

echo "== computed values"
render -f "$dev" --set config.drainTimeoutSeconds=33,preStopSleepSeconds=4,terminationMarginSeconds=10 >"$tmp/grace.yaml"
grep -qx '      terminationGracePeriodSeconds: 47' "$tmp/grace.yaml" || fail "want terminationGracePeriodSeconds 47 (4+33+10)"
grep -qx '  VS_DRAIN_TIMEOUT: "33s"' "$tmp/grace.yaml" || fail 'want VS_DRAIN_TIMEOUT "33s"'
grep -qx '                seconds: 4' "$tmp/grace.yaml" || fail "want preStop sleep 4"
echo "ok  4 + 33 + 10 = 47, VS_DRAIN_TIMEOUT=\"33s\""

render -f "$dev" >"$tmp/dev.yaml"
grep -qx '  name: vs-viewer-session-token' "$tmp/dev.yaml" || fail "want the generated token Secret"
grep -qx '    helm.sh/resource-policy: keep' "$tmp/dev.yaml" || fail "want the token Secret kept on uninstall"
grep -qx '  VS_TOKEN_SECRET_FILE: "/etc/viewer-session/token/token-secret"' "$tmp/dev.yaml" || fail "want VS_TOKEN_SECRET_FILE"
grep -qx '            secretName: vs-viewer-session-token' "$tmp/dev.yaml" || fail "want the token Secret mounted"
! grep -q '8081\|VS_WEB_ADDR' "$tmp/dev.yaml" || fail "web.enabled false must render no web port"
echo "ok  token Secret generated, kept, mounted, VS_TOKEN_SECRET_FILE set; no web port by default"

render -f "$EVERY" >"$tmp/every.yaml"
grep -qx '          image: "123456789012.dkr.ecr.us-west-2.amazonaws.com/video/viewer-session@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"' "$tmp/every.yaml" ||
  fail "want registry/repository@digest"
grep -qx '  VS_WEB_ADDR: ":8081"' "$tmp/every.yaml" || fail "want VS_WEB_ADDR"
grep -qx '  VS_WEB_ORIGINS: "https://app.example.com,https://admin.example.com:8443"' "$tmp/every.yaml" || fail "want VS_WEB_ORIGINS"
grep -qx '            secretName: vss-token' "$tmp/every.yaml" || fail "want tokenSecret.existingSecret mounted"
! grep -q 'name: vs-viewer-session-token' "$tmp/every.yaml" || fail "tokenSecret.existingSecret must not render a token Secret"
! grep -q 'VSSClientIDAcquireSlow' "$tmp/rendered-rules.yaml" || fail "disabledAlerts: VSSClientIDAcquireSlow rendered"
[ "$(grep -c 'team: video' "$tmp/rendered-rules.yaml")" = 15 ] || fail "want alertLabels on the 15 alerts"
grep -qx '      runbook_url: https://runbooks.example.com/viewer-session#vssrediserrors' "$tmp/rendered-rules.yaml" ||
  fail "want runbook_url on VSSRedisErrors"
echo "ok  image by digest, web port and origins, existing token Secret, alert labels, runbook URLs, a disabled alert"

echo "== chartcheck tests"
(cd "$CHECK_DIR" && go vet ./... && HELM="$(command -v helm)" go test -count=1 ./...)

echo "== alerts"
scripts/check-alerts.sh "$tmp/rendered-rules.yaml"
echo "check-chart: ok in $((SECONDS - start)) s"
