package main

import (
	"strings"
	"testing"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: vs
spec:
  selector:
    matchLabels: {app: vs}
  template:
    metadata:
      labels: {app: vs}
    spec:
      terminationGracePeriodSeconds: 35
      containers:
        - name: server
          image: vs:dev
`

const serviceMonitor = `apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: vs
spec:
  selector:
    matchLabels: {app: vs}
  endpoints:
    - port: metrics
      path: /metrics
      interval: 30s
`

const prometheusRule = `apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: vs
spec:
  groups:
    - name: g
      rules:
        - alert: VSSRedisErrors
          expr: sum(rate(vss_redis_errors_total[5m])) > 0
          for: 5m
          labels:
            severity: critical
`

const grpcRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: vs
spec:
  parentRefs:
    - name: gw
  hostnames: [vss.example.com]
  rules:
    - backendRefs:
        - name: vs
          port: 50051
`

const ingress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: vs
spec:
  rules:
    - host: vss.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: vs
                port:
                  name: grpc
`

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    []string // objects decoded, in order
		wantErr string   // substring of the error; empty means success
	}{
		{
			name: "correct deployment",
			give: deployment,
			want: []string{"Deployment/vs"},
		},
		{
			name:    "misspelled field",
			give:    strings.Replace(deployment, "terminationGracePeriodSeconds", "terminationGracePeriodSecond", 1),
			wantErr: `unknown field "spec.template.spec.terminationGracePeriodSecond"`,
		},
		{
			name:    "field with the wrong case",
			give:    strings.Replace(deployment, "terminationGracePeriodSeconds", "TerminationGracePeriodSeconds", 1),
			wantErr: `unknown field "spec.template.spec.TerminationGracePeriodSeconds"`,
		},
		{
			name:    "field at the wrong level",
			give:    deployment + "  terminationGracePeriodSeconds: 35\n",
			wantErr: `unknown field "spec.terminationGracePeriodSeconds"`,
		},
		{
			name:    "duplicate field",
			give:    deployment + "  replicas: 1\n  replicas: 2\n",
			wantErr: `key "replicas" already set`,
		},
		{
			name:    "wrong type",
			give:    strings.Replace(deployment, "35", `"35s"`, 1),
			wantErr: "terminationGracePeriodSeconds",
		},
		{
			name:    "bad quantity",
			give:    deployment + "          resources:\n            limits: {memory: 512MB}\n",
			wantErr: "quantities must match",
		},
		{
			name:    "unknown kind",
			give:    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
			wantErr: `unknown apiVersion "v1" kind "Pod"`,
		},
		{
			name:    "no name",
			give:    "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
			wantErr: "metadata.name is empty",
		},
		{
			name: "several documents, comments and empty ones",
			give: "---\n# Source: a.yaml\n---\n" + deployment + "---\n" + serviceMonitor + "---\n",
			want: []string{"Deployment/vs", "ServiceMonitor/vs"},
		},
		{
			name:    "ServiceMonitor field the minimal struct lacks",
			give:    serviceMonitor + "      honorLabels: true\n",
			wantErr: `unknown field "spec.endpoints[0].honorLabels"`,
		},
		{
			name:    "ServiceMonitor interval not a Prometheus duration",
			give:    strings.Replace(serviceMonitor, "30s", "30 seconds", 1),
			wantErr: "not a Prometheus duration",
		},
		{
			name: "PrometheusRule, GRPCRoute and Ingress",
			give: prometheusRule + "---\n" + grpcRoute + "---\n" + ingress,
			want: []string{"PrometheusRule/vs", "GRPCRoute/vs", "Ingress/vs"},
		},
		{
			name:    "PrometheusRule field misplaced",
			give:    prometheusRule + "          severity: critical\n",
			wantErr: `unknown field "spec.groups[0].rules[0].severity"`,
		},
		{
			name:    "PrometheusRule alert without severity",
			give:    strings.Replace(prometheusRule, "severity: critical", "team: video", 1),
			wantErr: "no severity label",
		},
		{
			name:    "PrometheusRule bad for",
			give:    strings.Replace(prometheusRule, "for: 5m", "for: 5 minutes", 1),
			wantErr: "not a Prometheus duration",
		},
		{
			name:    "GRPCRoute without parentRefs",
			give:    strings.Replace(grpcRoute, "  parentRefs:\n    - name: gw\n", "", 1),
			wantErr: "spec.parentRefs is empty",
		},
		{
			name:    "GRPCRoute hostname with a port",
			give:    strings.Replace(grpcRoute, "vss.example.com", "vss.example.com:443", 1),
			wantErr: "spec.hostnames[0]",
		},
		{
			name:    "GRPCRoute backend without port",
			give:    strings.Replace(grpcRoute, "          port: 50051\n", "", 1),
			wantErr: "needs name and port",
		},
		{
			name:    "Ingress backend port misspelled",
			give:    strings.Replace(ingress, "name: grpc", "nmae: grpc", 1),
			wantErr: `unknown field "spec.rules[0].http.paths[0].backend.service.port.nmae"`,
		},
		{
			name:    "error names the failing document after good ones",
			give:    deployment + "---\n" + strings.Replace(serviceMonitor, "port:", "prot:", 1),
			want:    []string{"Deployment/vs"},
			wantErr: "document 2 (ServiceMonitor/vs)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := check(strings.NewReader(tt.give))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("check() error = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("check() error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("check() objects = %q, want %q", got, tt.want)
			}
		})
	}
}
