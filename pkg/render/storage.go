package render

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// mapStorage maps the storage classes of an object's claims through the
// cluster's spec.storage: PersistentVolumeClaims, StatefulSet
// volumeClaimTemplates and generic ephemeral volumes of any pod template.
// A cluster without spec.storage leaves classes as they are.
func mapStorage(c *v1alpha1.Cluster, o object) error {
	st := c.Spec.Storage
	if st == nil {
		return nil
	}
	var claims []claimSpec
	switch gkOf(o) {
	case "/PersistentVolumeClaim":
		if spec, ok := o["spec"].(map[string]any); ok {
			claims = append(claims, claimSpec{spec, "spec.storageClassName"})
		}
	case "apps/StatefulSet":
		vcts, _ := field(o, "spec", "volumeClaimTemplates")
		l, _ := vcts.([]any)
		for i, v := range l {
			if spec, ok := field(asObject(v), "spec"); ok {
				if m, ok := spec.(map[string]any); ok {
					claims = append(claims, claimSpec{m, fmt.Sprintf("spec.volumeClaimTemplates[%d].spec.storageClassName", i)})
				}
			}
		}
	}
	for _, ps := range podSpecs(o) {
		vols, _ := ps.spec["volumes"].([]any)
		for i, v := range vols {
			s, ok := field(asObject(v), "ephemeral", "volumeClaimTemplate", "spec")
			if m, isMap := s.(map[string]any); ok && isMap {
				claims = append(claims, claimSpec{m, fmt.Sprintf("%s.volumes[%d].ephemeral.volumeClaimTemplate.spec.storageClassName", ps.path, i)})
			}
		}
	}
	for _, cl := range claims {
		if err := mapClass(st, cl.spec); err != nil {
			return fmt.Errorf("%s: %s: %w", describe(o), cl.path, err)
		}
	}
	return nil
}

type claimSpec struct {
	spec map[string]any
	path string
}

func asObject(v any) object {
	m, _ := v.(map[string]any)
	return m
}

// podSpecs finds the pod specs of Pods, workload templates and CronJobs.
func podSpecs(o object) []claimSpec {
	var out []claimSpec
	add := func(p string, fields ...string) {
		if v, ok := field(o, fields...); ok {
			if m, ok := v.(map[string]any); ok {
				out = append(out, claimSpec{m, p})
			}
		}
	}
	if gkOf(o) == "/Pod" {
		add("spec", "spec")
	}
	add("spec.template.spec", "spec", "template", "spec")
	add("spec.jobTemplate.spec.template.spec", "spec", "jobTemplate", "spec", "template", "spec")
	return out
}

// mapClass maps one claim spec's storageClassName. An absent class gets the
// default; "" (explicitly no class) is kept; a logical class is mapped; a
// class that already is one of the cluster's real classes is kept.
func mapClass(st *v1alpha1.StorageSpec, spec map[string]any) error {
	v, present := spec["storageClassName"]
	if !present || v == nil {
		if st.Default != "" {
			spec["storageClassName"] = st.Default
		}
		return nil
	}
	class, ok := v.(string)
	if !ok {
		return fmt.Errorf("storageClassName is not a string")
	}
	if class == "" {
		return nil
	}
	if real, ok := st.Classes[class]; ok {
		spec["storageClassName"] = real
		return nil
	}
	if class == st.Default {
		return nil
	}
	var known []string
	for logical, real := range st.Classes {
		if real == class {
			return nil
		}
		known = append(known, logical)
	}
	sort.Strings(known)
	return fmt.Errorf("storage class %q is not mapped by the cluster (spec.storage.classes maps: %s)", class, strings.Join(known, ", "))
}
