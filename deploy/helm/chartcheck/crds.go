package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The Gateway API and Prometheus Operator types are decoded with their own
// Go types (sigs.k8s.io/gateway-api, the operator's pkg/apis/monitoring
// module), which catches unknown and misplaced fields. Their CRDs also
// carry OpenAPI and CEL rules that a Go type does not enforce; validate
// applies the ones the chart's objects could break.
func validate(obj any) error {
	switch o := obj.(type) {
	case *monitoringv1.PrometheusRule:
		return validateRule(o)
	case *gatewayv1.Gateway:
		return validateGateway(o)
	case *gatewayv1.HTTPRoute:
		return validateRoute(o.Spec.ParentRefs, o.Spec.Hostnames, len(o.Spec.Rules), func(i int) []gatewayv1.BackendRef {
			var refs []gatewayv1.BackendRef
			for _, r := range o.Spec.Rules[i].BackendRefs {
				refs = append(refs, r.BackendRef)
			}
			return refs
		})
	case *gatewayv1.GRPCRoute:
		return validateRoute(o.Spec.ParentRefs, o.Spec.Hostnames, len(o.Spec.Rules), func(i int) []gatewayv1.BackendRef {
			var refs []gatewayv1.BackendRef
			for _, r := range o.Spec.Rules[i].BackendRefs {
				refs = append(refs, r.BackendRef)
			}
			return refs
		})
	}
	return nil
}

// ruleName is the CRD's pattern for alert and record names.
var ruleName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

func validateRule(r *monitoringv1.PrometheusRule) error {
	if len(r.Spec.Groups) == 0 {
		return errors.New("spec.groups is empty")
	}
	groups := map[string]bool{}
	for i, g := range r.Spec.Groups {
		if g.Name == "" || groups[g.Name] {
			return fmt.Errorf("spec.groups[%d].name %q: empty or repeated", i, g.Name)
		}
		groups[g.Name] = true
		if len(g.Rules) == 0 {
			return fmt.Errorf("spec.groups[%d] (%s) has no rules", i, g.Name)
		}
		for j, rule := range g.Rules {
			at := fmt.Sprintf("spec.groups[%d].rules[%d]", i, j)
			name := rule.Alert + rule.Record
			if (rule.Alert == "") == (rule.Record == "") || !ruleName.MatchString(name) {
				return fmt.Errorf("%s: want one of alert or record, a metric-like name; got alert %q record %q", at, rule.Alert, rule.Record)
			}
			if strings.TrimSpace(rule.Expr.String()) == "" {
				return fmt.Errorf("%s (%s): expr is empty", at, name)
			}
			if rule.For != nil && !promDuration.MatchString(string(*rule.For)) {
				return fmt.Errorf("%s (%s): for %q: not a Prometheus duration", at, name, *rule.For)
			}
			if rule.Alert != "" && rule.Labels["severity"] == "" {
				return fmt.Errorf("%s (%s): no severity label", at, name)
			}
		}
	}
	return nil
}

func validateGateway(g *gatewayv1.Gateway) error {
	if g.Spec.GatewayClassName == "" {
		return errors.New("spec.gatewayClassName is empty")
	}
	if len(g.Spec.Listeners) == 0 {
		return errors.New("spec.listeners is empty")
	}
	names := map[gatewayv1.SectionName]bool{}
	for i, l := range g.Spec.Listeners {
		at := fmt.Sprintf("spec.listeners[%d]", i)
		if errs := validation.IsDNS1123Label(string(l.Name)); len(errs) > 0 || names[l.Name] {
			return fmt.Errorf("%s.name %q: repeated or not a DNS label %v", at, l.Name, errs)
		}
		names[l.Name] = true
		if l.Hostname != nil {
			if err := hostname(string(*l.Hostname)); err != nil {
				return fmt.Errorf("%s.hostname: %w", at, err)
			}
		}
		if l.Protocol == gatewayv1.HTTPSProtocolType {
			if l.TLS == nil || len(l.TLS.CertificateRefs) == 0 || l.TLS.CertificateRefs[0].Name == "" {
				return fmt.Errorf("%s: an HTTPS listener needs tls.certificateRefs", at)
			}
		}
		if l.Port < 1 || l.Port > 65535 {
			return fmt.Errorf("%s.port %d", at, l.Port)
		}
	}
	return nil
}

func validateRoute(parents []gatewayv1.ParentReference, hosts []gatewayv1.Hostname, rules int, backends func(int) []gatewayv1.BackendRef) error {
	if len(parents) == 0 {
		return errors.New("spec.parentRefs is empty")
	}
	for i, p := range parents {
		if p.Name == "" {
			return fmt.Errorf("spec.parentRefs[%d].name is empty", i)
		}
	}
	for i, h := range hosts {
		if err := hostname(string(h)); err != nil {
			return fmt.Errorf("spec.hostnames[%d]: %w", i, err)
		}
	}
	if rules == 0 {
		return errors.New("spec.rules is empty")
	}
	for i := range rules {
		for j, b := range backends(i) {
			if b.Name == "" || b.Port == nil {
				return fmt.Errorf("spec.rules[%d].backendRefs[%d]: a Service backend needs name and port", i, j)
			}
		}
	}
	return nil
}

// hostname applies the Gateway API's Hostname rule: a DNS name, optionally
// with a leading "*." wildcard label, no IP address, no port.
func hostname(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("%q: %s", h, strings.Join(errs, "; "))
	}
	return nil
}
