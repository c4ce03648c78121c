package fleet

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// Cluster references: Helm values (and, opt-in, Kustomize output) may name
// facts of the target cluster as ${cluster.<fact>}. Nothing else is
// substituted: a "${HOME}" in a shell snippet stays as written. The facts:
//
//	${cluster.name}                   the Cluster's metadata.name
//	${cluster.labels.<key>}           a label (the key is the rest, dots and slashes included)
//	${cluster.values.<path>}          spec.values (over the Fleet's spec.values), a dotted path
//	${cluster.storage.default}        spec.storage.default
//	${cluster.storage.classes.<name>} spec.storage.classes[name]
//	${cluster.registry.mirror}        spec.registry.mirror
//	${cluster.kubernetesVersion}      spec.kubernetesVersion (else the Fleet's)
//
// A string that is exactly one reference takes the fact's value with its
// type (a number, a map); inside a longer string the fact must be a scalar.
// ${cluster.x:=text} gives text when the fact is missing; $${cluster.x} is
// the literal text ${cluster.x}.

// refPrefix starts every cluster reference.
const refPrefix = "${cluster."

// ClusterFacts are the facts of one cluster that references resolve against.
type ClusterFacts struct {
	Name              string
	Labels            map[string]string
	Values            map[string]any
	Storage           *v1alpha1.StorageSpec
	Registry          *v1alpha1.RegistrySpec
	KubernetesVersion string
}

// FactsOf returns the facts of a cluster of repo (the Fleet's values and
// version under the cluster's own).
func FactsOf(repo *Repo, c *v1alpha1.Cluster) *ClusterFacts {
	f := &ClusterFacts{
		Name:              c.Metadata.Name,
		Labels:            c.Metadata.Labels,
		Storage:           c.Spec.Storage,
		Registry:          c.Spec.Registry,
		KubernetesVersion: c.Spec.KubernetesVersion,
	}
	var base map[string]any
	if repo != nil && repo.Fleet != nil {
		base = repo.Fleet.Spec.Values
		if f.KubernetesVersion == "" {
			f.KubernetesVersion = repo.Fleet.Spec.KubernetesVersion
		}
	}
	f.Values = MergeValues(base, c.Spec.Values)
	if f.Values == nil {
		f.Values = map[string]any{}
	}
	return f
}

// RefError is a reference that cannot be resolved.
type RefError struct {
	Ref    string // the reference as written, e.g. ${cluster.labels.region}
	Reason string
}

func (e *RefError) Error() string { return e.Ref + ": " + e.Reason }

// syntax reports whether the reference is wrong whatever the cluster.
func (e *RefError) syntax() bool {
	return strings.HasPrefix(e.Reason, "unknown cluster fact") || strings.HasPrefix(e.Reason, "name a") || e.Reason == "no closing }"
}

// lookup resolves one fact path (after "cluster.").
func (f *ClusterFacts) lookup(p string) (any, string) {
	head, rest, _ := strings.Cut(p, ".")
	switch head {
	case "name":
		if rest == "" {
			return f.Name, ""
		}
	case "kubernetesVersion":
		if rest == "" {
			if f.KubernetesVersion == "" {
				return nil, fmt.Sprintf("cluster %s has no spec.kubernetesVersion", f.Name)
			}
			return f.KubernetesVersion, ""
		}
	case "labels":
		if rest == "" {
			return nil, "name a label: ${cluster.labels.<key>}"
		}
		if v, ok := f.Labels[rest]; ok {
			return v, ""
		}
		return nil, fmt.Sprintf("cluster %s has no label %q", f.Name, rest)
	case "values":
		if rest == "" {
			return nil, "name a value: ${cluster.values.<path>}"
		}
		var cur any = f.Values
		for _, k := range strings.Split(rest, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, fmt.Sprintf("cluster %s has no spec.values.%s", f.Name, rest)
			}
			if cur, ok = m[k]; !ok {
				return nil, fmt.Sprintf("cluster %s has no spec.values.%s", f.Name, rest)
			}
		}
		return cur, ""
	case "storage":
		switch {
		case rest == "default":
			if f.Storage == nil || f.Storage.Default == "" {
				return nil, fmt.Sprintf("cluster %s has no spec.storage.default", f.Name)
			}
			return f.Storage.Default, ""
		case strings.HasPrefix(rest, "classes."):
			k := strings.TrimPrefix(rest, "classes.")
			if f.Storage != nil {
				if v, ok := f.Storage.Classes[k]; ok {
					return v, ""
				}
			}
			return nil, fmt.Sprintf("cluster %s has no spec.storage.classes.%s", f.Name, k)
		}
	case "registry":
		if rest == "mirror" {
			if f.Registry == nil || f.Registry.Mirror == "" {
				return nil, fmt.Sprintf("cluster %s has no spec.registry.mirror", f.Name)
			}
			return f.Registry.Mirror, ""
		}
	}
	return nil, "unknown cluster fact: want cluster.name, cluster.labels.<key>, cluster.values.<path>, cluster.storage.default, cluster.storage.classes.<name>, cluster.registry.mirror or cluster.kubernetesVersion"
}

// HasRefs reports whether s holds a cluster reference.
func HasRefs(s string) bool { return strings.Contains(s, refPrefix) }

// ExpandString substitutes the references in s. A string that is exactly
// one reference gives the fact with its type; otherwise the result is a string.
func (f *ClusterFacts) ExpandString(s string) (any, error) {
	if !HasRefs(s) {
		return s, nil
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, refPrefix)
		if i < 0 {
			b.WriteString(rest)
			break
		}
		if i > 0 && rest[i-1] == '$' { // $${cluster.x}: the literal text
			b.WriteString(rest[:i-1])
			end := strings.IndexByte(rest[i:], '}')
			if end < 0 {
				b.WriteString(rest[i:])
				break
			}
			b.WriteString(rest[i : i+end+1])
			rest = rest[i+end+1:]
			continue
		}
		b.WriteString(rest[:i])
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return nil, &RefError{Ref: rest[i:], Reason: "no closing }"}
		}
		ref := rest[i : i+end+1]
		expr := ref[len("${") : len(ref)-1]
		fact, def, hasDef := strings.Cut(expr, ":=")
		v, why := f.lookup(strings.TrimPrefix(fact, "cluster."))
		if why != "" {
			if e := (&RefError{Ref: ref, Reason: why}); !hasDef || e.syntax() {
				return nil, e
			}
			v = def
			if i == 0 && end+1 == len(rest) && b.Len() == 0 {
				// the whole string: the default is a YAML scalar, as if written there
				var typed any
				if yaml.Unmarshal([]byte(def), &typed) == nil && typed != nil {
					if _, isColl := typed.(map[string]any); !isColl {
						if _, isList := typed.([]any); !isList {
							v = typed
						}
					}
				}
			}
		}
		if i == 0 && end+1 == len(rest) && b.Len() == 0 {
			return v, nil // the whole string: keep the type
		}
		sv, err := scalarText(v)
		if err != nil {
			return nil, &RefError{Ref: ref, Reason: err.Error()}
		}
		b.WriteString(sv)
		rest = rest[i+end+1:]
	}
	return b.String(), nil
}

// scalarText formats a fact for use inside a longer string.
func scalarText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "", nil
	case map[string]any, []any:
		return "", fmt.Errorf("is a %s: only a string that is exactly the reference can take a map or a list", kindOf(v))
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func kindOf(v any) string {
	if _, ok := v.(map[string]any); ok {
		return "map"
	}
	return "list"
}

// Expand returns v with every reference in its strings substituted
// (map keys are left alone); v is not changed. Errors name the path of
// the value, e.g. "env.region: ${cluster.labels.region}: ...".
func (f *ClusterFacts) Expand(v any) (any, error) {
	return f.expand(v, "")
}

func (f *ClusterFacts) expand(v any, at string) (any, error) {
	switch x := v.(type) {
	case string:
		out, err := f.ExpandString(x)
		if err != nil && at != "" {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		return out, err
	case map[string]any:
		out := make(map[string]any, len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e, err := f.expand(x[k], joinPath(at, k))
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return out, nil
	case v1alpha1.Values:
		return f.expand(map[string]any(x), at)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			e, err := f.expand(x[i], fmt.Sprintf("%s[%d]", at, i))
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	}
	return v, nil
}

func joinPath(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

// Ref is a reference found in a YAML document, with its place.
type Ref struct {
	Text string // the whole string value
	Line int
	Path string // dotted path of the value inside the scanned node
}

// ScanRefs lists the strings holding references under a YAML node.
func ScanRefs(n *yaml.Node) []Ref {
	var out []Ref
	var walk func(n *yaml.Node, at string)
	walk = func(n *yaml.Node, at string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, at)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], joinPath(at, n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", at, i))
			}
		case yaml.ScalarNode:
			if HasRefs(n.Value) {
				out = append(out, Ref{Text: n.Value, Line: n.Line, Path: at})
			}
		}
	}
	walk(n, "")
	return out
}
