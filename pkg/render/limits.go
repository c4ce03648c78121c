package render

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// maxDataBytes is what the API server accepts in a ConfigMap's or Secret's
// data (1 MiB): a larger one is refused at render time, naming it, instead
// of at apply time on every cluster.
const maxDataBytes = 1 << 20

// labelNamed are kinds whose names must be RFC 1123 labels; subdomainNamed
// RFC 1123 subdomains (the API server's rules for the common built-in
// kinds). Other kinds (RBAC, custom resources) have rules of their own and
// are left to the server.
var (
	labelNamed     = map[string]bool{"/Namespace": true, "/Service": true}
	subdomainNamed = map[string]bool{
		"/ConfigMap": true, "/Secret": true, "/ServiceAccount": true, "/PersistentVolumeClaim": true, "/Pod": true,
		"apps/Deployment": true, "apps/StatefulSet": true, "apps/DaemonSet": true, "batch/Job": true, "batch/CronJob": true,
		"networking.k8s.io/Ingress": true, "policy/PodDisruptionBudget": true, "autoscaling/HorizontalPodAutoscaler": true,
		"apiextensions.k8s.io/CustomResourceDefinition": true, "storage.k8s.io/StorageClass": true,
	}
)

// checkObjects refuses objects the API server would refuse whatever the
// cluster: a name it does not take, data over its size limit. The error
// names the object.
func checkObjects(objs []object) error {
	var errs []string
	for _, o := range objs {
		gk := gkOf(o)
		name := str(o, "metadata", "name")
		id := fmt.Sprintf("%s %s", str(o, "kind"), name)
		var bad []string
		switch {
		case labelNamed[gk]:
			bad = validation.IsDNS1123Label(name)
		case subdomainNamed[gk]:
			bad = validation.IsDNS1123Subdomain(name)
		}
		if len(bad) > 0 {
			errs = append(errs, fmt.Sprintf("%s: metadata.name %q: %s", id, name, strings.Join(bad, "; ")))
		}
		if gk == "/ConfigMap" || gk == "/Secret" {
			if n := dataBytes(o, gk == "/Secret"); n > maxDataBytes {
				errs = append(errs, fmt.Sprintf("%s: %d bytes of data, over the %d MiB the API server takes for a %s", id, n, maxDataBytes>>20, str(o, "kind")))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// dataBytes is the size of a ConfigMap's or Secret's data (a Secret's data
// decoded from base64).
func dataBytes(o object, secret bool) int {
	n := 0
	for _, key := range []string{"data", "binaryData", "stringData"} {
		m, _ := o[key].(map[string]any)
		for k, v := range m {
			s, _ := v.(string)
			n += len(k)
			if secret && key == "data" {
				n += base64.StdEncoding.DecodedLen(len(s))
			} else {
				n += len(s)
			}
		}
	}
	return n
}

// maxExpandedNodes bounds what a YAML file's aliases may expand to: kustomize
// expands them while it builds, so a "billion laughs" file would take all
// the memory of the process. Real manifests use few aliases, if any.
const maxExpandedNodes = 1_000_000

// aliasBomb reports why a YAML file is refused: its aliases expand to more
// than maxExpandedNodes nodes. Only files with both an anchor and an alias
// character are parsed (without expanding), so the check costs nothing for
// the others; a file that does not parse is left to the reader's error.
func aliasBomb(name string, b []byte) string {
	if !bytes.ContainsRune(b, '&') || !bytes.ContainsRune(b, '*') {
		return ""
	}
	ext := path.Ext(name)
	if ext != ".yaml" && ext != ".yml" {
		return ""
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	total := 0
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			break
		}
		memo := map[*yaml.Node]int{}
		total += expandedNodes(&doc, memo, 0)
		if total > maxExpandedNodes {
			return fmt.Sprintf("%s: its YAML aliases expand to more than %d nodes (an alias bomb?): refused", name, maxExpandedNodes)
		}
	}
	return ""
}

// expandedNodes counts the nodes of n with its aliases expanded, memoised
// per node (an alias of an alias costs one lookup).
func expandedNodes(n *yaml.Node, memo map[*yaml.Node]int, depth int) int {
	if n == nil || depth > 10_000 {
		return 1
	}
	if v, ok := memo[n]; ok {
		return v
	}
	memo[n] = 1 // a cycle counts once
	total := 1
	if n.Kind == yaml.AliasNode {
		total += expandedNodes(n.Alias, memo, depth+1)
	}
	for _, c := range n.Content {
		total += expandedNodes(c, memo, depth+1)
		if total > maxExpandedNodes {
			break
		}
	}
	memo[n] = total
	return total
}
