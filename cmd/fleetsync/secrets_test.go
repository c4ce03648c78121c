package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetsync/fleetsync/internal/testfleet"
)

// TestSecretsNeverShown puts Secrets with marker values in a fleet (in
// stringData and base64 data, one of them refused by the API server) and
// asserts that no marker, and no credential (the git password in the URL,
// the webhook secret, a registry password, the cluster's client key), appears in the output of
// validate, plan, apply and diff, nor in the daemon's log, status API,
// dashboard or metrics.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	f := testfleet.Get(t)
	r := newRolloutRepo(t)
	const (
		marker    = "MARKER-s3cr3t-value-4f1c"
		marker2   = "MARKER-s3cr3t-value-9a2e"
		edited    = "MARKER-s3cr3t-edited-77d0"
		refused   = "MARKER-s3cr3t-refused-c3b5"
		gitPass   = "MARKER-git-password-0b7e"
		hookToken = "MARKER-webhook-secret-e61a"
		regPass   = "MARKER-registry-password-5c9d"
	)
	// Registry credentials, in a Docker config given to apply and run.
	regConfig := filepath.Join(t.TempDir(), "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("fleet:" + regPass))
	if err := os.WriteFile(regConfig, []byte(`{"auths":{"`+f.Registries.Source+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := func(value string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: %q}
---
apiVersion: v1
kind: Secret
metadata: {name: encoded}
data: {token: %s}
---
apiVersion: v1
kind: Secret
metadata: {name: refused}
type: kubernetes.io/tls
stringData: {password: %q}
`, value, base64.StdEncoding.EncodeToString([]byte(value)), refused)
	}
	app := "secret-" + r.suffix
	write := func(value string) {
		r.write(t, "apps/"+app+"/app.yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: %s}\nspec:\n  namespace: %s\n  source: {kustomize: {path: base}}\n  targets: {clusterSelector: {matchLabels: {region: north}}}\n", app, app))
		r.write(t, "apps/"+app+"/base/kustomization.yaml", "resources: [secrets.yaml]\n")
		r.write(t, "apps/"+app+"/base/secrets.yaml", secrets(value))
	}
	write(marker)
	base := r.commit(t, "secrets")
	write(marker2)
	head := r.commit(t, "new secret values")

	var shown strings.Builder
	record := func(what, out string) {
		shown.WriteString("== " + what + "\n" + out + "\n")
	}
	out, _ := runCLI(t, "validate", "--repo", r.dir)
	record("validate", out)
	out, _ = runCLI(t, "plan", "--repo", r.dir, "--base", base, "--head", head)
	record("plan", out)
	out, _ = runCLI(t, "plan", "--repo", r.dir, "--base", base, "--head", head, "-o", "json")
	record("plan -o json", out)
	out, errOut, _ := runApplyOrDiff(t, "apply", r.args(f, "apply", "--timeout", "20s", "-v", "--registry-config", regConfig)[1:]...)
	record("apply", out+errOut) // the tls Secret without tls.crt is refused
	if !strings.Contains(out+errOut, "refused") {
		t.Errorf("apply: the invalid Secret is not reported:\n%s", out+errOut)
	}
	// A person edits the Secret: diff shows the drift, masked.
	cs := kubernetes.NewForConfigOrDie(f.RESTConfig(t, "north"))
	patch := fmt.Sprintf(`{"stringData":{"password":%q}}`, edited)
	if _, err := cs.CoreV1().Secrets(app).Patch(context.Background(), "creds", types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runApplyOrDiff(t, "diff", r.args(f)...)
	record("diff", out+errOut)
	if code != 1 || !strings.Contains(out, "creds") {
		t.Errorf("diff after editing the Secret: exit %d, want 1 naming it:\n%s", code, out+errOut)
	}

	// The daemon, with a git password in the URL and a webhook secret.
	srvURL, err := url.Parse(serveRepo(t, r.dir))
	if err != nil {
		t.Fatal(err)
	}
	srvURL.User = url.UserPassword("fleet", gitPass)
	hookFile := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(hookFile, []byte(hookToken), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logFile := filepath.Join(t.TempDir(), "run.log")
	d := startDaemonLogged(t, logFile, "--repo", srvURL.String(), "--branch", "main",
		"--kubeconfig-dir", f.Dir, "--kubeconfig", filepath.Join(r.dir, ".absent-kubeconfig"),
		"--listen", addr, "--interval", "1s", "--heartbeat-interval", "1s", "--drift-interval", "2s", "--log-format", "json",
		"--git-cache-dir", t.TempDir(), "--github-webhook-secret-file", hookFile, "--health-timeout", "10s", "--registry-config", regConfig)
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := getStatus(addr)
		if err == nil && appOn(st, "north", app).Error != "" && st.Source.Revision == head {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never reported the refused Secret: %+v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a drift check and a few cycles
	for _, p := range []string{"/api/v1/status", "/", "/metrics"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		record("GET "+p, string(b))
	}
	_ = d.Process.Kill()
	_ = d.Wait()
	b, _ := os.ReadFile(logFile)
	record("daemon log", string(b))
	if !strings.Contains(string(b), "refused") {
		t.Errorf("the daemon's log does not report the refused Secret")
	}
	key, _ := os.ReadFile(f.Kubeconfig("north"))
	clientKey := ""
	for _, line := range strings.Split(string(key), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "client-key-data: "); ok {
			clientKey = v[:40]
		}
	}
	all := shown.String()
	for _, m := range []string{marker, marker2, edited, refused, gitPass, hookToken, regPass, auth, base64.StdEncoding.EncodeToString([]byte(marker)), base64.StdEncoding.EncodeToString([]byte(marker2)), clientKey} {
		if m == "" {
			continue
		}
		if i := strings.Index(all, m); i >= 0 {
			start := max(0, strings.LastIndex(all[:i], "\n== "))
			t.Errorf("%q shown, in %s", m, strings.SplitN(all[start:], "\n", 2)[0])
		}
	}
}

// startDaemonLogged is startDaemon with its log in a file the test reads.
func startDaemonLogged(t *testing.T, logFile string, args ...string) *exec.Cmd {
	t.Helper()
	return startVerbLogged(t, "run", logFile, args...)
}
