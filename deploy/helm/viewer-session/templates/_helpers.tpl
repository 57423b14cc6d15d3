{{/* Chart name, at most 63 characters. */}}
{{- define "viewer-session.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects, at most 63 characters. */}}
{{- define "viewer-session.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "viewer-session.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "viewer-session.labels" -}}
helm.sh/chart: {{ include "viewer-session.chart" . }}
{{ include "viewer-session.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "viewer-session.selectorLabels" -}}
app.kubernetes.io/name: {{ include "viewer-session.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "viewer-session.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "viewer-session.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the chart creates its own Secret. */}}
{{- define "viewer-session.createSecret" -}}
{{- if or (and (not .Values.apiKeys.existingSecret) .Values.apiKeys.keys) (and (ne .Values.redis.mode "none") (not .Values.redis.existingSecret) .Values.redis.url) }}true{{ end }}
{{- end }}

{{- define "viewer-session.apiKeysSecret" -}}
{{- .Values.apiKeys.existingSecret | default (include "viewer-session.fullname" .) }}
{{- end }}

{{- define "viewer-session.apiKeysSecretKey" -}}
{{- if .Values.apiKeys.existingSecret }}{{ .Values.apiKeys.existingSecretKey }}{{ else }}api-keys{{ end }}
{{- end }}

{{/* The image reference: [<registry>/]<repository>(@<digest>|:<tag>). */}}
{{- define "viewer-session.image" -}}
{{- $repo := .Values.image.repository }}
{{- with .Values.image.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The Secret and key of the token-derivation key. */}}
{{- define "viewer-session.tokenSecret" -}}
{{- .Values.tokenSecret.existingSecret | default (printf "%s-token" (include "viewer-session.fullname" .)) }}
{{- end }}

{{- define "viewer-session.tokenSecretKey" -}}
{{- if .Values.tokenSecret.existingSecret }}{{ .Values.tokenSecret.existingSecretKey }}{{ else }}token-secret{{ end }}
{{- end }}

{{- define "viewer-session.redisSecret" -}}
{{- .Values.redis.existingSecret | default (include "viewer-session.fullname" .) }}
{{- end }}

{{- define "viewer-session.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretKey }}{{ else }}redis-url{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop sleep runs first, then SIGTERM
starts the drain (config.drainTimeoutSeconds), then the server closes its
dependencies (up to 5 s) within the margin.
*/}}
{{- define "viewer-session.terminationGracePeriodSeconds" -}}
{{- add .Values.preStopSleepSeconds .Values.config.drainTimeoutSeconds .Values.terminationMarginSeconds }}
{{- end }}

{{/* Checks across values that the schema cannot express. */}}
{{- define "viewer-session.validate" -}}
{{- $v := .Values }}
{{- if and (not $v.apiKeys.existingSecret) (not $v.apiKeys.keys) }}
{{- fail "apiKeys: set apiKeys.existingSecret (a Secret with the keys) or apiKeys.keys; without a key every backend RPC is refused" }}
{{- end }}
{{- if and $v.apiKeys.existingSecret $v.apiKeys.keys }}
{{- fail "apiKeys: set apiKeys.existingSecret or apiKeys.keys, not both" }}
{{- end }}
{{- if eq $v.redis.mode "none" }}
{{- if or $v.redis.existingSecret $v.redis.url }}
{{- fail "redis: redis.mode is none (in-memory) but redis.existingSecret or redis.url is set; set redis.mode" }}
{{- end }}
{{- if or $v.autoscaling.enabled (gt (int $v.replicaCount) 1) }}
{{- fail "redis.mode none keeps state in memory and serves one replica: set replicaCount 1 and autoscaling.enabled false, or set redis.mode" }}
{{- end }}
{{- else }}
{{- if not (or $v.redis.existingSecret $v.redis.url) }}
{{- fail (printf "redis: redis.mode is %s: set redis.existingSecret (a Secret with the URL) or redis.url" $v.redis.mode) }}
{{- end }}
{{- if and $v.redis.existingSecret $v.redis.url }}
{{- fail "redis: set redis.existingSecret or redis.url, not both" }}
{{- end }}
{{- if and (eq $v.redis.mode "sentinel") $v.redis.url (not (contains "master_name=" $v.redis.url)) }}
{{- fail "redis: a sentinel URL names its master: ...?master_name=<name>&addr=<sentinel2>:26379" }}
{{- end }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail "autoscaling: minReplicas is greater than maxReplicas" }}
{{- end }}
{{- if and $v.autoscaling.enabled (not $v.autoscaling.targetCPUUtilizationPercentage) (not $v.autoscaling.targetSessionsPerPod) }}
{{- fail "autoscaling: set targetCPUUtilizationPercentage or targetSessionsPerPod (or both)" }}
{{- end }}
{{- if not $v.web.enabled }}
{{- if and $v.ingress.enabled $v.ingress.web.hosts }}
{{- fail "ingress.web.hosts: the web port is off; set web.enabled" }}
{{- end }}
{{- if and $v.gateway.enabled $v.gateway.web.hostnames }}
{{- fail "gateway.web.hostnames: the web port is off; set web.enabled" }}
{{- end }}
{{- end }}
{{- range $v.ingress.grpc.hosts }}
{{- if and $v.ingress.enabled (has . $v.ingress.web.hosts) }}
{{- fail (printf "ingress: host %s is in both ingress.grpc.hosts and ingress.web.hosts; give the web port a host of its own" .) }}
{{- end }}
{{- end }}
{{- range $v.gateway.grpc.hostnames }}
{{- if and $v.gateway.enabled (has . $v.gateway.web.hostnames) }}
{{- fail (printf "gateway: hostname %s is in both gateway.grpc.hostnames and gateway.web.hostnames; give the web port a hostname of its own" .) }}
{{- end }}
{{- end }}
{{- if and $v.ingress.enabled (not $v.ingress.grpc.hosts) (not $v.ingress.web.hosts) }}
{{- fail "ingress: enabled without hosts; set ingress.grpc.hosts or ingress.web.hosts" }}
{{- end }}
{{- if $v.gateway.enabled }}
{{- if and (not $v.gateway.grpc.hostnames) (not $v.gateway.web.hostnames) }}
{{- fail "gateway: enabled without hostnames; set gateway.grpc.hostnames or gateway.web.hostnames" }}
{{- end }}
{{- if and (not $v.gateway.parentRefs) (not $v.gateway.create.enabled) }}
{{- fail "gateway: the routes need a Gateway; set gateway.parentRefs or gateway.create.enabled" }}
{{- end }}
{{- if and $v.gateway.create.enabled (not $v.gateway.create.tlsSecretName) }}
{{- fail "gateway.create: its HTTPS listeners need gateway.create.tlsSecretName" }}
{{- end }}
{{- end }}
{{- if and $v.gateway.create.enabled (not $v.gateway.enabled) }}
{{- fail "gateway.create: set gateway.enabled too (the Gateway serves the chart's routes)" }}
{{- end }}
{{- range $name := list "readinessProbe" "livenessProbe" "startupProbe" }}
{{- $p := index $v $name | default dict }}
{{- $handlers := list }}
{{- range $h := list "exec" "httpGet" "tcpSocket" "grpc" }}{{ if index $p $h }}{{ $handlers = append $handlers $h }}{{ end }}{{ end }}
{{- if gt (len $handlers) 1 }}
{{- fail (printf "%s has %d handlers (%s); Kubernetes takes one: set the one you replace to null (--set %s.<handler>=null)" $name (len $handlers) (join ", " $handlers) $name) }}
{{- end }}
{{- if and $p (not $handlers) }}
{{- fail (printf "%s has no handler (exec, httpGet, tcpSocket or grpc)" $name) }}
{{- end }}
{{- end }}
{{- end }}
