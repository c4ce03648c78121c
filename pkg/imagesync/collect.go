package imagesync

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// PodSpecPaths say where the pod spec of a kind is, as field paths; a custom
// kind is named "group/Kind" (e.g. "argoproj.io/Rollout": spec.template.spec).
type PodSpecPaths map[string][][]string

// DefaultPodSpecPaths are the pod-bearing kinds of Kubernetes itself.
func DefaultPodSpecPaths() PodSpecPaths {
	tmpl := [][]string{{"spec", "template", "spec"}}
	return PodSpecPaths{
		"Pod":                   {{"spec"}},
		"apps/Deployment":       tmpl,
		"apps/StatefulSet":      tmpl,
		"apps/DaemonSet":        tmpl,
		"apps/ReplicaSet":       tmpl,
		"batch/Job":             tmpl,
		"batch/CronJob":         {{"spec", "jobTemplate", "spec", "template", "spec"}},
		"ReplicationController": tmpl,
	}
}

// containerLists are the lists of a pod spec that hold images.
var containerLists = []string{"initContainers", "containers", "ephemeralContainers"}

// Use is one image reference in one object.
type Use struct {
	// Object is Kind/namespace/name (Kind/name when cluster-scoped).
	Object string `json:"object"`
	// Container is the container's name; Field the path of its image field.
	Container string `json:"container"`
	Field     string `json:"field"`
	// Image is the reference as written.
	Image string `json:"image"`

	obj   int      // index of the object in the list
	path  []string // the container list's path
	index int      // the container's index in it
}

func kindKey(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	if gvk.Group == "" {
		return gvk.Kind
	}
	return gvk.Group + "/" + gvk.Kind
}

func objectName(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetKind() + "/" + u.GetName()
	}
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// Collect returns every image reference of the objects, in object order. A
// container without an image, or an image that is not a string, is an error
// naming the object and field.
func Collect(objs []*unstructured.Unstructured, paths PodSpecPaths) ([]Use, error) {
	var out []Use
	var errs []string
	for oi, u := range objs {
		for _, spec := range paths[kindKey(u)] {
			for _, list := range containerLists {
				path := append(append([]string(nil), spec...), list)
				items, found, err := unstructured.NestedSlice(u.Object, path...)
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %s: %v", objectName(u), strings.Join(path, "."), err))
					continue
				}
				if !found {
					continue
				}
				for i, it := range items {
					c, _ := it.(map[string]any)
					name, _ := c["name"].(string)
					field := fmt.Sprintf("%s[%d].image", strings.Join(path, "."), i)
					img, ok := c["image"].(string)
					if !ok || img == "" {
						errs = append(errs, fmt.Sprintf("%s: %s: container %q has no image", objectName(u), field, name))
						continue
					}
					out = append(out, Use{Object: objectName(u), Container: name, Field: field, Image: img, obj: oi, path: path, index: i})
				}
			}
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// Images returns the distinct references of the uses, sorted.
func Images(uses []Use) []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range uses {
		if !seen[u.Image] {
			seen[u.Image] = true
			out = append(out, u.Image)
		}
	}
	sort.Strings(out)
	return out
}

// Rewrite returns the objects with each use's image replaced by to[image]
// (uses whose image is not in to are left as written). Objects that change are
// deep-copied; the others are returned as they are (they may be shared).
func Rewrite(objs []*unstructured.Unstructured, uses []Use, to map[string]string) []*unstructured.Unstructured {
	out := append([]*unstructured.Unstructured(nil), objs...)
	copied := map[int]bool{}
	for _, u := range uses {
		ref, ok := to[u.Image]
		if !ok || ref == u.Image {
			continue
		}
		if !copied[u.obj] {
			out[u.obj] = out[u.obj].DeepCopy()
			copied[u.obj] = true
		}
		items, _, _ := unstructured.NestedSlice(out[u.obj].Object, u.path...)
		if c, ok := items[u.index].(map[string]any); ok {
			c["image"] = ref
		}
		_ = unstructured.SetNestedSlice(out[u.obj].Object, items, u.path...)
	}
	return out
}
