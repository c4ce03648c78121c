package fleet

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// checker reports problems about one decoded object, at the lines of its file.
type checker struct {
	l   *loader
	doc *document
}

func (l *loader) checker(obj any) checker { return checker{l: l, doc: l.docs[obj]} }

func (c checker) add(field, format string, args ...any) {
	p := Problem{Field: field, Message: fmt.Sprintf(format, args...)}
	if c.doc != nil {
		if c.doc.isRejected(field) {
			return
		}
		p.File, p.Line = c.doc.file, c.doc.line(field)
	}
	c.l.probs = append(c.l.probs, p)
}

// validate runs every semantic rule over the decoded objects.
func (l *loader) validate(repo *Repo) {
	l.sels.clusters = repo.Clusters
	if repo.Fleet != nil {
		l.validateFleet(repo.Fleet)
	}
	names := map[string]string{}
	for _, cl := range repo.Clusters {
		l.validateCluster(cl)
		l.unique(cl, cl.Metadata.Name, names)
	}
	names = map[string]string{}
	for _, a := range repo.Apps {
		l.validateApp(repo, a)
		l.unique(a, a.Metadata.Name, names)
	}
	l.validateDependencies(repo)
	names = map[string]string{}
	for _, p := range repo.ScalePolicies {
		l.validatePolicy(repo, p)
		l.unique(p, p.Metadata.Name, names)
	}
	l.validatePolicyOverlaps(repo)
}

// unique reports a name already used by another object of the same kind.
func (l *loader) unique(obj any, name string, seen map[string]string) {
	c := l.checker(obj)
	if name == "" || c.doc == nil {
		return
	}
	if first, dup := seen[name]; dup {
		c.add("metadata.name", "name %q is already used by %s", name, first)
		return
	}
	seen[name] = c.doc.file
}

// validateMeta checks the name and labels every object has.
func (c checker) validateMeta(m v1alpha1.ObjectMeta) {
	c.dnsLabel("metadata.name", m.Name)
	for k, v := range m.Labels {
		field := "metadata.labels." + k
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			c.add(field, "invalid label key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			c.add(field, "invalid label value %q: %s", v, strings.Join(errs, "; "))
		}
	}
}

// dnsLabel checks a required DNS-1123 label.
func (c checker) dnsLabel(field, v string) {
	c.dnsName(field, v, "label", validation.IsDNS1123Label)
}

// dnsSubdomain checks a required DNS-1123 subdomain.
func (c checker) dnsSubdomain(field, v string) {
	c.dnsName(field, v, "subdomain", validation.IsDNS1123Subdomain)
}

// dnsName checks a required name against one of the DNS-1123 forms (what
// names the form in messages).
func (c checker) dnsName(field, v, what string, check func(string) []string) {
	if v == "" {
		c.add(field, "required")
		return
	}
	if errs := check(v); len(errs) > 0 {
		c.add(field, "%q is not a DNS-1123 %s: %s", v, what, strings.Join(errs, "; "))
	}
}

// selector checks a label selector; required says an absent one is a problem.
func (c checker) selector(field string, sel *metav1.LabelSelector, required string) bool {
	if sel == nil {
		if required != "" {
			c.add(field, "required: %s", required)
		}
		return false
	}
	if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		c.add(field, "invalid label selector: %v", err)
		return false
	}
	return true
}

// duration checks an optional duration is positive (parsing happened at decode time).
func (c checker) duration(field string, d *v1alpha1.Duration) {
	if d != nil && d.Duration <= 0 {
		c.add(field, "must be a positive duration, found %q", d.String())
	}
}

// apiVersionRE matches "v1", "group/version" and "group/version/Kind".
var apiVersionRE = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?(/[A-Z][A-Za-z0-9]*)?$`)

// kubernetesVersion checks an optional "vX.Y.Z" version (the "v" may be left out).
func (c checker) kubernetesVersion(field, v string) {
	if v == "" {
		return
	}
	if _, err := version.ParseSemantic(strings.TrimPrefix(v, "v")); err != nil || strings.Count(v, ".") != 2 {
		c.add(field, "%q is not a Kubernetes version: want MAJOR.MINOR.PATCH such as v1.37.2 or 1.37.2", v)
	}
}

func (l *loader) validateFleet(f *v1alpha1.Fleet) {
	c := l.checker(f)
	c.validateMeta(f.Metadata)
	c.kubernetesVersion("spec.kubernetesVersion", f.Spec.KubernetesVersion)
	c.duration("spec.healthTimeout", f.Spec.HealthTimeout)
}

func (l *loader) validateCluster(cl *v1alpha1.Cluster) {
	c := l.checker(cl)
	c.validateMeta(cl.Metadata)
	if c.doc != nil && cl.Metadata.Name != "" {
		if want := strings.TrimSuffix(path.Base(c.doc.file), yamlExt); want != cl.Metadata.Name {
			c.add("metadata.name", "%q does not match the file name %s (want %q)", cl.Metadata.Name, c.doc.file, want)
		}
	}
	s := cl.Spec
	if s.Storage != nil {
		if s.Storage.Default != "" {
			c.dnsSubdomain("spec.storage.default", s.Storage.Default)
		}
		for logical, class := range s.Storage.Classes {
			field := "spec.storage.classes." + logical
			if errs := validation.IsDNS1123Subdomain(logical); len(errs) > 0 {
				c.add(field, "logical class %q is not a DNS-1123 subdomain: %s", logical, strings.Join(errs, "; "))
			}
			c.dnsSubdomain(field, class)
		}
	}
	if s.Registry != nil {
		if msg := checkMirror(s.Registry.Mirror, s.Registry.Insecure); msg != "" {
			c.add("spec.registry.mirror", "%s", msg)
		}
	}
	c.kubernetesVersion("spec.kubernetesVersion", s.KubernetesVersion)
	for i, v := range s.APIVersions {
		if !apiVersionRE.MatchString(v) {
			c.add(fmt.Sprintf("spec.apiVersions[%d]", i), "%q is not an API version: want group/version or group/version/Kind, e.g. monitoring.coreos.com/v1", v)
		}
	}
	pools := map[string]int{}
	for i, np := range s.NodePools {
		field := fmt.Sprintf("spec.nodePools[%d]", i)
		c.dnsLabel(field+".name", np.Name)
		if first, dup := pools[np.Name]; dup && np.Name != "" {
			c.add(field+".name", "node pool %q is already declared by spec.nodePools[%d]", np.Name, first)
		} else {
			pools[np.Name] = i
		}
		c.dnsLabel(field+".machineDeployment.namespace", np.MachineDeployment.Namespace)
		c.dnsSubdomain(field+".machineDeployment.name", np.MachineDeployment.Name)
	}
}
