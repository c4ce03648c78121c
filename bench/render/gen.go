package renderbench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// storageKinds and regionNames are the cluster label values of the generated fleet.
func storageKinds() []string { return []string{"ceph", "nfs", "ebs"} }
func regionNames() []string  { return []string{"north", "south", "east", "west"} }

// Spec sizes a generated fleet.
type Spec struct {
	Clusters int // number of clusters (named c00, c01, ...)
	Apps     int // number of apps; the first half Kustomize, the rest Helm
}

// DefaultSpec is the fleet of issue 4: 60 clusters x 20 apps.
func DefaultSpec() Spec { return Spec{Clusters: 60, Apps: 20} }

// Fleet is a generated fleet repo and, for the baseline, the CLI invocation
// that renders each (cluster, app) pair.
type Fleet struct {
	// Dir is the fleet repo.
	Dir string
	// Pairs lists every (cluster, app) pair, sorted by cluster then app.
	Pairs []Pair
	// KustomizeApps and HelmApps name the apps of each kind.
	KustomizeApps, HelmApps []string
}

// Pair is one (cluster, app) render and the CLI command that does the same.
type Pair struct {
	Cluster, App string
	// Tool is "kustomize" or "helm"; Args are its arguments, with paths
	// relative to Fleet.Dir.
	Tool string
	Args []string
}

type cluster struct {
	name, region, storage string
}

// Generate writes a fleet repo into dir/repo (and the values files that the
// baseline's helm commands need into dir/baseline): half the apps are
// Kustomize apps with one overlay per storage kind, half are local Helm
// charts with values per region; every app targets every cluster.
func Generate(dir string, spec Spec) (*Fleet, error) {
	storages, regions := storageKinds(), regionNames()
	f := &Fleet{Dir: filepath.Join(dir, "repo")}
	w := &writer{root: f.Dir}
	var clusters []cluster
	for i := range spec.Clusters {
		c := cluster{name: fmt.Sprintf("c%02d", i), region: regions[i%len(regions)], storage: storages[i%len(storages)]}
		clusters = append(clusters, c)
		w.file("clusters/"+c.name+".yaml", clusterYAML(c))
	}
	w.file("fleet.yaml", "apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata:\n  name: bench\nspec:\n  kubernetesVersion: v1.37.2\n")
	nk := spec.Apps / 2
	for i := range spec.Apps {
		if i < nk {
			app := fmt.Sprintf("kapp-%02d", i)
			f.KustomizeApps = append(f.KustomizeApps, app)
			writeKustomizeApp(w, app, i)
			continue
		}
		app := fmt.Sprintf("happ-%02d", i)
		f.HelmApps = append(f.HelmApps, app)
		writeHelmApp(w, app, i)
		for _, r := range regions {
			// The same values as the app's customization for the region, for helm -f.
			w.file(filepath.Join("..", "baseline", app, "values-"+r+".yaml"), regionValues(r, i))
		}
	}
	if w.err != nil {
		return nil, w.err
	}
	for _, c := range clusters {
		for _, app := range f.HelmApps {
			f.Pairs = append(f.Pairs, Pair{Cluster: c.name, App: app, Tool: "helm", Args: []string{
				"template", app, filepath.Join("apps", app, "chart"), "--namespace", app,
				"-f", filepath.Join("apps", app, "values-common.yaml"),
				"-f", filepath.Join("..", "baseline", app, "values-"+c.region+".yaml"),
			}})
		}
		for _, app := range f.KustomizeApps {
			f.Pairs = append(f.Pairs, Pair{Cluster: c.name, App: app, Tool: "kustomize", Args: []string{
				"build", filepath.Join("apps", app, "overlays", c.storage),
			}})
		}
	}
	return f, nil
}

// writer writes files under root and keeps the first error.
type writer struct {
	root string
	err  error
}

func (w *writer) file(rel, content string) {
	if w.err != nil {
		return
	}
	p := filepath.Join(w.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		w.err = fmt.Errorf("generate fleet: %w", err)
		return
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		w.err = fmt.Errorf("generate fleet: %w", err)
	}
}

func clusterYAML(c cluster) string {
	return fmt.Sprintf(`apiVersion: fleetsync.dev/v1alpha1
kind: Cluster
metadata:
  name: %[1]s
  labels:
    region: %[2]s
    storage: %[3]s
    env: prod
spec:
  storage:
    default: %[3]s-standard
    classes:
      fast: %[3]s-fast
      shared: %[3]s-shared
`, c.name, c.region, c.storage)
}

// SetImageTag rewrites the image tag of a Kustomize app's base Deployment:
// a one-app change for the re-render benchmark.
func (f *Fleet) SetImageTag(app, tag string) error {
	if !slices.Contains(f.KustomizeApps, app) {
		return fmt.Errorf("change app %s: not a Kustomize app of the generated fleet", app)
	}
	p := filepath.Join(f.Dir, "apps", app, "base", "deployment.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("change app %s: %w", app, err)
	}
	prefix := "          image: registry.example/fleet/" + app + ":"
	lines := strings.Split(string(b), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			lines[i] = prefix + tag
			found = true
		}
	}
	if !found {
		return fmt.Errorf("change app %s: no image line in %s", app, p)
	}
	// gosec's G703 flags this call because the content comes from
	// os.ReadFile; the path is f.Dir plus a generated app name checked above.
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600); err != nil { //nolint:gosec // G703 false positive: the tainted argument is the content, not the path
		return fmt.Errorf("change app %s: %w", app, err)
	}
	return nil
}

// appYAML is an App targeting every cluster; source and customizations are
// YAML already indented for their place.
func appYAML(app, source, customizations string) string {
	return fmt.Sprintf(`apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata:
  name: %[1]s
spec:
  namespace: %[1]s
  source:
    %[2]s
  targets:
    clusterSelector: {}
  customizations:
%[3]s  prune: true
`, app, source, customizations)
}

func writeKustomizeApp(w *writer, app string, n int) {
	storages := storageKinds()
	dir := "apps/" + app
	var cust strings.Builder
	for _, s := range storages {
		fmt.Fprintf(&cust, "    - clusterSelector:\n        matchLabels:\n          storage: %s\n      kustomize:\n        path: overlays/%s\n", s, s)
	}
	w.file(dir+"/app.yaml", appYAML(app, "kustomize:\n      path: base", cust.String()))
	w.file(dir+"/base/kustomization.yaml", `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - serviceaccount.yaml
  - deployment.yaml
  - service.yaml
  - pvc.yaml
configMapGenerator:
  - name: `+app+`-config
    files:
      - settings.properties
`)
	w.file(dir+"/base/serviceaccount.yaml", fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s\n", app))
	w.file(dir+"/base/deployment.yaml", deploymentYAML(app, n))
	w.file(dir+"/base/service.yaml", serviceYAML(app))
	w.file(dir+"/base/pvc.yaml", fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: %s-data
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: fast
  resources:
    requests:
      storage: %dGi
`, app, 10+n))
	var props strings.Builder
	for k := range 30 {
		fmt.Fprintf(&props, "%s.setting.%02d=value-%d-%d\n", app, k, n, k)
	}
	w.file(dir+"/base/settings.properties", props.String())
	for i, s := range storages {
		w.file(dir+"/overlays/"+s+"/kustomization.yaml", fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
labels:
  - pairs:
      storage-kind: %[1]s
patches:
  - target:
      kind: Deployment
      name: %[2]s
    patch: |-
      - op: replace
        path: /spec/replicas
        value: %[3]d
  - target:
      kind: PersistentVolumeClaim
    patch: |-
      apiVersion: v1
      kind: PersistentVolumeClaim
      metadata:
        name: any
        annotations:
          storage.fleetsync.dev/kind: %[1]s
configMapGenerator:
  - name: %[2]s-storage
    literals:
      - STORAGE=%[1]s
      - CACHE_DIR=/data/%[1]s
`, s, app, 2+i))
	}
}

func deploymentYAML(app string, n int) string {
	var env strings.Builder
	for k := range 12 {
		fmt.Fprintf(&env, "            - name: SETTING_%02d\n              value: \"%d\"\n", k, n*100+k)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  labels:
    app.kubernetes.io/name: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: %[1]s
  template:
    metadata:
      labels:
        app.kubernetes.io/name: %[1]s
    spec:
      serviceAccountName: %[1]s
      containers:
        - name: app
          image: registry.example/fleet/%[1]s:v1.%[2]d.0
          ports:
            - containerPort: 8080
              name: http
          env:
%[3]s          readinessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 5
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 10
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {cpu: "1", memory: 512Mi}
          volumeMounts:
            - {name: data, mountPath: /data}
            - {name: config, mountPath: /etc/app}
      volumes:
        - name: data
          persistentVolumeClaim: {claimName: %[1]s-data}
        - name: config
          configMap: {name: %[1]s-config}
`, app, n, env.String())
}

func serviceYAML(app string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector:
    app.kubernetes.io/name: %[1]s
  ports:
    - name: http
      port: 80
      targetPort: http
`, app)
}

func regionValues(region string, n int) string {
	return fmt.Sprintf("region: %s\nreplicaCount: %d\nresources:\n  cpu: %dm\n", region, 2+len(region)%3+n%2, 100*(1+len(region)%4))
}

func writeHelmApp(w *writer, app string, n int) {
	regions := regionNames()
	dir := "apps/" + app
	var cust strings.Builder
	for _, r := range regions {
		vals := strings.ReplaceAll(strings.TrimSuffix(regionValues(r, n), "\n"), "\n", "\n        ")
		fmt.Fprintf(&cust, "    - clusterSelector:\n        matchLabels:\n          region: %s\n      values:\n        %s\n", r, vals)
	}
	w.file(dir+"/app.yaml", appYAML(app, "helm:\n      chart: ./chart\n      releaseName: "+app+"\n      valuesFiles:\n        - values-common.yaml", cust.String()))
	w.file(dir+"/values-common.yaml", fmt.Sprintf("image:\n  repository: registry.example/fleet/%s\n  tag: v2.%d.0\npersistence:\n  size: %dGi\n", app, n, 5+n))
	w.file(dir+"/chart/Chart.yaml", fmt.Sprintf("apiVersion: v2\nname: %s\nversion: 0.%d.0\nappVersion: \"2.%d.0\"\n", app, n, n))
	w.file(dir+"/chart/values.yaml", `region: none
replicaCount: 1
image:
  repository: registry.example/fleet/app
  tag: latest
resources:
  cpu: 100m
  memory: 256Mi
persistence:
  size: 1Gi
  storageClass: fast
settings:
  logLevel: info
  featureA: true
  featureB: false
  timeoutSeconds: 30
`)
	w.file(dir+"/chart/templates/_helpers.tpl", `{{- define "app.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "app.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
`)
	w.file(dir+"/chart/templates/deployment.yaml", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels:
    {{- include "app.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      {{- include "app.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "app.selector" . | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    spec:
      containers:
        - name: app
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          env:
            - name: REGION
              value: {{ .Values.region | quote }}
            {{- range $k, $v := .Values.settings }}
            - name: {{ $k | upper }}
              value: {{ $v | quote }}
            {{- end }}
          resources:
            requests:
              cpu: {{ .Values.resources.cpu }}
              memory: {{ .Values.resources.memory }}
          volumeMounts:
            - {name: data, mountPath: /data}
      volumes:
        - name: data
          persistentVolumeClaim:
            claimName: {{ .Release.Name }}-data
`)
	w.file(dir+"/chart/templates/configmap.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  labels:
    {{- include "app.labels" . | nindent 4 }}
data:
  region: {{ .Values.region | quote }}
  {{- range $k, $v := .Values.settings }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
`)
	w.file(dir+"/chart/templates/service.yaml", `apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
  labels:
    {{- include "app.labels" . | nindent 4 }}
spec:
  selector:
    {{- include "app.selector" . | nindent 4 }}
  ports:
    - name: http
      port: 80
      targetPort: 8080
`)
	w.file(dir+"/chart/templates/pvc.yaml", `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ .Release.Name }}-data
  labels:
    {{- include "app.labels" . | nindent 4 }}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: {{ .Values.persistence.storageClass }}
  resources:
    requests:
      storage: {{ .Values.persistence.size }}
`)
}
