// Command chartcheck decodes the Kubernetes objects that `helm template`
// renders into their typed API structs, with unknown and duplicate fields
// refused, so that a misspelled or misplaced field fails CI instead of being
// dropped silently by the API server's client-side defaults:
//
//	helm template vs ../viewer-session -f ../viewer-session/examples/dev.yaml | go run .
//
// It reads multi-document YAML on stdin, prints one line per object and
// exits 1 on the first document that does not decode. Field matching is
// case-sensitive, as in the API server (sigs.k8s.io/json). Kinds it does not
// know fail: the chart may only render what this program checks. The CRDs'
// kinds decode into their projects' own Go types (Gateway API's Gateway,
// HTTPRoute and GRPCRoute; the Prometheus Operator's PrometheusRule), plus
// the schema rules of theirs the chart could break (crds.go); the
// ServiceMonitor into a minimal struct of the fields the chart uses.
//
// With -prometheus-rules FILE it also writes the rendered PrometheusRule's
// spec as a Prometheus rule file, for `promtool check rules`.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

func main() {
	rulesOut := flag.String("prometheus-rules", "", "also write the rendered PrometheusRule's spec to this file, as a Prometheus rule file (for promtool)")
	flag.Parse()
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartcheck:", err)
		os.Exit(1)
	}
	objs, err := check(bytes.NewReader(in))
	for _, o := range objs {
		fmt.Println("ok", o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartcheck:", err)
		os.Exit(1)
	}
	fmt.Printf("chartcheck: %d objects decoded strictly\n", len(objs))
	if *rulesOut != "" {
		rules, err := ruleFile(bytes.NewReader(in))
		if err == nil {
			err = os.WriteFile(*rulesOut, rules, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "chartcheck:", err)
			os.Exit(1)
		}
	}
}

// ruleFile returns the spec of the one PrometheusRule in r as a Prometheus
// rule file ({groups: [...]}), which is what the operator hands Prometheus.
func ruleFile(r io.Reader) ([]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var found []monitoringv1.PrometheusRule
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, err
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(j, &tm); err != nil || tm.Kind != "PrometheusRule" {
			continue
		}
		var pr monitoringv1.PrometheusRule
		if err := json.Unmarshal(j, &pr); err != nil {
			return nil, err
		}
		found = append(found, pr)
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%d PrometheusRules rendered, want 1", len(found))
	}
	return yaml.Marshal(found[0].Spec)
}

// newObject returns an empty typed object for apiVersion and kind, or nil
// for a kind chartcheck does not know.
func newObject(apiVersion, kind string) object {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "networking.k8s.io/v1 Ingress":
		return &networkingv1.Ingress{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &ServiceMonitor{}
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	case "gateway.networking.k8s.io/v1 Gateway":
		return &gatewayv1.Gateway{}
	case "gateway.networking.k8s.io/v1 HTTPRoute":
		return &gatewayv1.HTTPRoute{}
	case "gateway.networking.k8s.io/v1 GRPCRoute":
		return &gatewayv1.GRPCRoute{}
	}
	return nil
}

// object is what every decoded kind offers: its metadata.
type object interface {
	GetName() string
}

// check decodes every document of r strictly and returns "Kind/name" for
// each object, in order. Empty documents (helm's comment-only ones) are
// skipped.
func check(r io.Reader) ([]string, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var done []string
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return done, nil
		}
		if err != nil {
			return done, fmt.Errorf("document %d: %w", n, err)
		}
		name, err := decode(doc)
		if err != nil {
			return done, fmt.Errorf("document %d (%s): %w", n, name, err)
		}
		if name != "" {
			done = append(done, name)
		}
	}
}

// decode decodes one YAML document into its typed struct. It returns
// "Kind/name" (empty for an empty document).
func decode(doc []byte) (string, error) {
	// YAMLToJSONStrict refuses duplicate keys at the YAML level too.
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "", fmt.Errorf("yaml: %w", err)
	}
	if j = bytes.TrimSpace(j); len(j) == 0 || string(j) == "null" {
		return "", nil
	}
	var tm struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(j, &tm); err != nil {
		return "", fmt.Errorf("not a Kubernetes object: %w", err)
	}
	name := tm.Kind + "/" + tm.Metadata.Name
	obj := newObject(tm.APIVersion, tm.Kind)
	if obj == nil {
		return name, fmt.Errorf("unknown apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	strictErrs, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return name, err
	}
	if len(strictErrs) > 0 {
		return name, errors.Join(strictErrs...)
	}
	if obj.GetName() == "" {
		return name, errors.New("metadata.name is empty")
	}
	if v, ok := obj.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return name, err
		}
	}
	if err := validate(obj); err != nil {
		return name, err
	}
	return name, nil
}

// ServiceMonitor is the part of the Prometheus Operator's CRD
// (monitoring.coreos.com/v1) that the chart uses. It is defined here instead
// of importing the operator's module: any field the chart renders that is not
// below fails the strict decode, so adding one means adding it here too.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ServiceMonitorSpec `json:"spec"`
}

// ServiceMonitorSpec selects the Services to scrape and how.
type ServiceMonitorSpec struct {
	Selector  metav1.LabelSelector `json:"selector"`
	Endpoints []Endpoint           `json:"endpoints"`
}

// Endpoint is one scraped port of the selected Services.
type Endpoint struct {
	Port          string `json:"port"`
	Path          string `json:"path,omitempty"`
	Interval      string `json:"interval,omitempty"`
	ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
}

// promDuration is the CRD's pattern for interval and scrapeTimeout.
var promDuration = regexp.MustCompile(`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`)

// validate applies the CRD's own schema rules for the fields above.
func (s *ServiceMonitor) validate() error {
	if len(s.Spec.Endpoints) == 0 {
		return errors.New("spec.endpoints is empty")
	}
	for i, e := range s.Spec.Endpoints {
		if e.Port == "" {
			return fmt.Errorf("spec.endpoints[%d].port is empty", i)
		}
		for field, d := range map[string]string{"interval": e.Interval, "scrapeTimeout": e.ScrapeTimeout} {
			if !promDuration.MatchString(d) {
				return fmt.Errorf("spec.endpoints[%d].%s %q: not a Prometheus duration", i, field, d)
			}
		}
	}
	return nil
}
