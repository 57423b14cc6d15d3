package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	chartDir       = "../viewer-session"
	tokenSecret    = "vs-viewer-session-token"
	tokenNamespace = "viewer-session"
)

// apiServer answers the two requests helm's lookup makes: the discovery of
// core/v1 and a GET of the token Secret, which exists when live is not
// nil. Every request is recorded; any other is a 404.
func apiServer(t *testing.T, live *corev1.Secret) (url string, requests func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		var body any
		switch r.URL.Path {
		case "/api/v1":
			body = metav1.APIResourceList{
				TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList"},
				GroupVersion: "v1",
				APIResources: []metav1.APIResource{{Name: "secrets", SingularName: "secret", Namespaced: true, Kind: "Secret", Verbs: metav1.Verbs{"get", "list"}}},
			}
		case "/api/v1/namespaces/" + tokenNamespace + "/secrets/" + tokenSecret:
			if live != nil {
				body = live
			}
		}
		if body == nil {
			w.WriteHeader(http.StatusNotFound)
			body = metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound}
		}
		if err := json.NewEncoder(w).Encode(body); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// renderToken runs helm template with lookups against the API server at
// url (--dry-run=server, as helm install and upgrade do) and returns the
// token Secret's data value.
func renderToken(t *testing.T, helm, url string) string {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q}}]
users: [{name: test, user: {token: test}}]
contexts: [{name: test, context: {cluster: test, user: test, namespace: %s}}]
current-context: test
`, url, tokenNamespace)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helm, "template", "vs", chartDir, "--namespace", tokenNamespace, "--kube-version", "1.30.0",
		"-f", filepath.Join(chartDir, "examples", "dev.yaml"), "--dry-run=server")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HELM_CACHE_HOME="+dir, "HELM_CONFIG_HOME="+dir, "HELM_DATA_HOME="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, &stderr)
	}
	m := regexp.MustCompile(`(?m)^  token-secret: "([^"]*)"$`).FindStringSubmatch(stdout.String())
	if m == nil || !strings.Contains(stdout.String(), "name: "+tokenSecret) {
		t.Fatalf("no Secret %s with token-secret in the render:\n%s", tokenSecret, &stdout)
	}
	return m[1]
}

// The generated token key is drawn once: an upgrade finds the live Secret
// through lookup and renders the same key, so session tokens stay valid.
func TestTokenSecretKeptAcrossUpgrades(t *testing.T) {
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Skip("HELM is not set (scripts/check-chart.sh sets it to the helm it installs)")
	}
	t.Run("install draws a key", func(t *testing.T) {
		url, requests := apiServer(t, nil)
		first := renderToken(t, helm, url)
		second := renderToken(t, helm, url)
		key, err := base64.StdEncoding.DecodeString(first)
		if err != nil || !regexp.MustCompile(`^[a-zA-Z0-9]{64}$`).Match(key) {
			t.Errorf("generated key %q (err %v), want 64 random letters and digits", key, err)
		}
		if first == second {
			t.Errorf("two installs drew the same key %q", first)
		}
		want := "GET /api/v1/namespaces/" + tokenNamespace + "/secrets/" + tokenSecret
		if got := strings.Join(requests(), "\n"); !strings.Contains(got, want) {
			t.Errorf("helm did not look the Secret up; requests:\n%s", got)
		}
	})
	t.Run("upgrade keeps the live key", func(t *testing.T) {
		liveKey := []byte("kept-key-0123456789abcdef0123456789abcdef")
		live := &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: tokenSecret, Namespace: tokenNamespace},
			Data:       map[string][]byte{"token-secret": liveKey},
		}
		url, _ := apiServer(t, live)
		if got, want := renderToken(t, helm, url), base64.StdEncoding.EncodeToString(liveKey); got != want {
			t.Errorf("upgrade rendered token-secret %q, want the live %q", got, want)
		}
	})
}
