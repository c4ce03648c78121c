package apply

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func decode(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(s), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// live is a Deployment as the server returns it after fleetsync applied it
// (defaults added, an HPA-like manager owning replicas).
const liveDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: ns
  uid: 123
  resourceVersion: "9"
  labels: {fleetsync.dev/app: web}
  managedFields:
  - manager: fleetsync
    operation: Apply
    apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata: {f:labels: {f:fleetsync.dev/app: {}}}
      f:spec:
        f:selector: {}
        f:template:
          f:metadata: {f:labels: {f:app: {}}}
          f:spec:
            f:containers:
              k:{"name":"web"}:
                .: {}
                f:image: {}
                f:name: {}
                f:ports:
                  k:{"containerPort":8080,"protocol":"TCP"}:
                    .: {}
                    f:containerPort: {}
  - manager: kube-controller-manager
    operation: Update
    subresource: status
    apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1: {f:status: {f:replicas: {}}}
spec:
  replicas: 1
  progressDeadlineSeconds: 600
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      restartPolicy: Always
      containers:
      - name: web
        image: web:v1
        imagePullPolicy: IfNotPresent
        ports: [{containerPort: 8080, protocol: TCP}]
status: {replicas: 1}
`

const desiredDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: ns
  labels: {fleetsync.dev/app: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: IMAGE
        ports: [{containerPort: 8080}]
`

func TestOwnedMatches(t *testing.T) {
	live := decode(t, liveDeployment)
	for _, tc := range []struct {
		name    string
		desired string
		manager string
		want    bool
	}{
		{"same", desiredDeployment, "fleetsync", true},
		{"changed value", `image: web:v2`, "fleetsync", false},
		{"other manager", desiredDeployment, "someone", false},
		{"added field", desiredDeployment + "  replicas: 3\n", "fleetsync", false},
		{"removed field", `ports: [{containerPort: 8080}]`, "fleetsync", false},
		{"other apiVersion", `apiVersion: apps/v1beta2`, "fleetsync", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := desiredDeployment
			switch tc.name {
			case "changed value":
				d = replace(d, "image: IMAGE", tc.desired)
			case "removed field":
				d = replace(d, "        "+tc.desired+"\n", "")
			case "other apiVersion":
				d = replace(d, "apiVersion: apps/v1", tc.desired)
			default:
				d = tc.desired
			}
			d = replace(d, "IMAGE", "web:v1")
			if got := ownedMatches(live, decode(t, d), tc.manager); got != tc.want {
				t.Fatalf("ownedMatches = %v, want %v", got, tc.want)
			}
		})
	}
}

func replace(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}

func TestNormalizeEqual(t *testing.T) {
	a := decode(t, liveDeployment)
	b := a.DeepCopy()
	b.SetResourceVersion("10")
	b.SetManagedFields(nil)
	_ = unstructured.SetNestedField(b.Object, int64(2), "status", "replicas")
	if !Equal(a, b) {
		t.Fatal("server fields made a difference")
	}
	_ = unstructured.SetNestedField(b.Object, int64(2), "spec", "replicas")
	if Equal(a, b) {
		t.Fatal("spec change not seen")
	}
}
