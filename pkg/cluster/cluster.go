package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Where a cluster's credentials came from (Cluster.Source).
const (
	SourceKubeconfigDir = "kubeconfig-dir"
	SourceContext       = "kubeconfig-context"
	SourceSecret        = "secret"
	SourceInCluster     = "in-cluster"
	SourceKubeconfig    = "kubeconfig"
	SourceRESTConfig    = "rest-config"
)

// SecretPrefix prefixes the name of the Secret that holds a cluster's kubeconfig
// (fleetsync-cluster-<name>); SecretKey is its data key.
const (
	SecretPrefix = "fleetsync-cluster-" //nolint:gosec // a Secret name prefix, not a credential
	SecretKey    = "kubeconfig"
)

// ErrNoCredentials says no credentials were found for a cluster (a person has
// to provide them); the error names every place that was tried.
var ErrNoCredentials = errors.New("no credentials found")

// DefaultNamespace is the daemon's namespace when none is given.
const DefaultNamespace = "fleetsync-system"

// ConnectOptions say where to look for a cluster's credentials and how to talk to it.
type ConnectOptions struct {
	// KubeconfigDir holds <cluster>.kubeconfig files (looked at first).
	KubeconfigDir string
	// Kubeconfig is a kubeconfig path (or a list separated like $KUBECONFIG); empty
	// means $KUBECONFIG or ~/.kube/config. A context named after the cluster is used.
	Kubeconfig string
	// Namespace holds the fleetsync-cluster-<name> Secrets on the management cluster
	// (default fleetsync-system).
	Namespace string
	// InCluster is agent mode: the cluster is the one fleetsync runs in; its
	// credentials come from Kubeconfig's current context when Kubeconfig is set,
	// else from the in-cluster service account.
	InCluster bool
	// QPS and Burst limit the client's request rate (defaults 500 and 1000:
	// enough for a first apply of 1,000 objects in about 2 s; the API server's
	// priority and fairness protects it, and kubectl sets no client limit at all).
	QPS   float32
	Burst int
	// UserAgent sent to the API server (default "fleetsync").
	UserAgent string
	// Wrap, when set, wraps each cluster's transport (the daemon counts its
	// API requests per cluster for its metrics).
	Wrap func(cluster string) func(http.RoundTripper) http.RoundTripper
}

// Defaults used when ConnectOptions leave them zero.
const (
	DefaultQPS   = 500
	DefaultBurst = 1000
)

// Cluster is a connection to one member cluster.
type Cluster struct {
	// Name is the fleet repo's cluster name.
	Name string
	// Source says where the credentials came from (one of the Source constants).
	Source string
	// Config is the client configuration (rate limits applied).
	Config *rest.Config
	// Dynamic is a dynamic client for any resource.
	Dynamic dynamic.Interface
	// Metadata reads objects' metadata only (lists of kinds whose health
	// needs no more).
	Metadata metadata.Interface
	// Discovery is a memory-cached discovery client.
	Discovery discovery.CachedDiscoveryInterface

	mapper *restmapper.DeferredDiscoveryRESTMapper

	mappingsMu sync.Mutex
	mappings   map[schema.GroupVersionKind]*meta.RESTMapping // found, until the next reset

	discoveredMu sync.Mutex
	discoveredAt time.Time // when Discover last filled the cache
}

// DiscoveryMaxAge is how long Discover trusts the discovery cache: APIs
// added by others (an operator's CRDs, an aggregated API) are seen within it
// by the render's .Capabilities and scopes. Kinds fleetsync applies itself
// reset the cache at once.
const DiscoveryMaxAge = 5 * time.Minute

// Connect finds the named cluster's credentials (see the package comment) and
// returns a connection. It does not contact the cluster unless the credentials are
// in a Secret on the management cluster.
func Connect(ctx context.Context, name string, opts ConnectOptions) (*Cluster, error) {
	cfg, source, err := findConfig(ctx, name, opts)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	c, err := New(name, cfg, opts)
	if err != nil {
		return nil, err
	}
	c.Source = source
	return c, nil
}

// New returns a connection from an existing rest.Config (copied; QPS, Burst and
// UserAgent from opts are applied when the config leaves them zero).
func New(name string, cfg *rest.Config, opts ConnectOptions) (*Cluster, error) {
	cfg = rest.CopyConfig(cfg)
	if opts.Wrap != nil {
		cfg.Wrap(opts.Wrap(name))
	}
	if cfg.QPS == 0 {
		cfg.QPS = opts.QPS
		if cfg.QPS == 0 {
			cfg.QPS = DefaultQPS
		}
	}
	if cfg.Burst == 0 {
		cfg.Burst = opts.Burst
		if cfg.Burst == 0 {
			cfg.Burst = DefaultBurst
		}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = opts.UserAgent
		if cfg.UserAgent == "" {
			cfg.UserAgent = "fleetsync"
		}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: dynamic client: %w", name, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: discovery client: %w", name, err)
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: metadata client: %w", name, err)
	}
	cached := memory.NewMemCacheClient(dc)
	return &Cluster{
		Name:      name,
		Source:    SourceRESTConfig,
		Config:    cfg,
		Dynamic:   dyn,
		Metadata:  md,
		Discovery: cached,
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(cached),
	}, nil
}

// Mapper returns the cluster's cached REST mapper.
func (c *Cluster) Mapper() meta.RESTMapper { return c.mapper }

// ResetMapper drops the discovery cache, e.g. after CRDs became established.
func (c *Cluster) ResetMapper() { c.resetMapper() }

func (c *Cluster) resetMapper() {
	c.mapper.Reset()
	c.mappingsMu.Lock()
	c.mappings = nil
	c.mappingsMu.Unlock()
}

// Mapping maps a group/kind (at a version) to its resource, resetting the cache
// once when the kind is unknown (it may have been added since the cache was
// filled). Mappings found are kept until the cache is reset: observing a
// cluster maps every object of every app, and the REST mapper allocates on
// each call.
func (c *Cluster) Mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	c.mappingsMu.Lock()
	m, ok := c.mappings[gvk]
	c.mappingsMu.Unlock()
	if ok {
		return m, nil
	}
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil && meta.IsNoMatchError(err) {
		c.resetMapper()
		m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %s: no resource for %s: %w", c.Name, gvk, err)
	}
	c.mappingsMu.Lock()
	if c.mappings == nil {
		c.mappings = map[schema.GroupVersionKind]*meta.RESTMapping{}
	}
	c.mappings[gvk] = m
	c.mappingsMu.Unlock()
	return m, nil
}

// ServerVersion returns the cluster's Kubernetes version, e.g. "v1.37.2".
func (c *Cluster) ServerVersion(ctx context.Context) (string, error) {
	// The discovery client's ServerVersion has no ctx; ask /version directly.
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	body, err := c.Discovery.RESTClient().Get().AbsPath("/version").DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("cluster %s: version: %w", c.Name, err)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("cluster %s: version: %w", c.Name, err)
	}
	return v.GitVersion, nil
}

// Discovered is what the cluster serves, from one discovery read.
type Discovered struct {
	// APIVersions lists every "group/version" and "group/version/Kind" (core:
	// "v1", "v1/Pod"), sorted, as Helm's .Capabilities.APIVersions does.
	APIVersions []string
	// ClusterScoped maps "group/Kind" (core: "/Pod") to whether the kind is
	// cluster-scoped.
	ClusterScoped map[string]bool
}

// Discover reads what the cluster serves. Groups that fail to answer (an
// aggregated API that is down) are left out.
func (c *Cluster) Discover(ctx context.Context) (*Discovered, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.discoveredMu.Lock()
	if !c.discoveredAt.IsZero() && time.Since(c.discoveredAt) > DiscoveryMaxAge {
		c.resetMapper()
	}
	if c.discoveredAt.IsZero() || time.Since(c.discoveredAt) > DiscoveryMaxAge {
		c.discoveredAt = time.Now()
	}
	c.discoveredMu.Unlock()
	_, lists, err := c.Discovery.ServerGroupsAndResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("cluster %s: discovery: %w", c.Name, err)
	}
	d := &Discovered{ClusterScoped: map[string]bool{}}
	seen := map[string]bool{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		seen[l.GroupVersion] = true
		group, _, found := strings.Cut(l.GroupVersion, "/")
		if !found {
			group = "" // the core group: "v1"
		}
		for _, r := range l.APIResources {
			if r.Kind != "" && !strings.Contains(r.Name, "/") {
				seen[l.GroupVersion+"/"+r.Kind] = true
				d.ClusterScoped[group+"/"+r.Kind] = !r.Namespaced
			}
		}
	}
	d.APIVersions = make([]string, 0, len(seen))
	for k := range seen {
		d.APIVersions = append(d.APIVersions, k)
	}
	sort.Strings(d.APIVersions)
	return d, nil
}

// APIVersions returns what the cluster serves, as Helm's
// .Capabilities.APIVersions lists it (see Discovered.APIVersions).
func (c *Cluster) APIVersions(ctx context.Context) ([]string, error) {
	d, err := c.Discover(ctx)
	if err != nil {
		return nil, err
	}
	return d.APIVersions, nil
}

func findConfig(ctx context.Context, name string, opts ConnectOptions) (*rest.Config, string, error) {
	if opts.InCluster {
		if opts.Kubeconfig != "" {
			cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
				&clientcmd.ClientConfigLoadingRules{ExplicitPath: opts.Kubeconfig},
				&clientcmd.ConfigOverrides{}).ClientConfig()
			if err != nil {
				return nil, "", fmt.Errorf("kubeconfig %s: %w", opts.Kubeconfig, err)
			}
			return cfg, SourceKubeconfig, nil
		}
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("in-cluster config: %w", err)
		}
		return cfg, SourceInCluster, nil
	}
	var tried []string
	if opts.KubeconfigDir != "" {
		p := filepath.Join(opts.KubeconfigDir, name+".kubeconfig")
		if _, err := os.Stat(p); err == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", p)
			if err != nil {
				return nil, "", fmt.Errorf("kubeconfig %s: %w", p, err)
			}
			return cfg, SourceKubeconfigDir, nil
		}
		tried = append(tried, "no "+name+".kubeconfig in --kubeconfig-dir")
	}
	rules := loadingRules(opts.Kubeconfig)
	raw, err := rules.Load()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	if _, ok := raw.Contexts[name]; ok {
		cfg, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{CurrentContext: name}).ClientConfig()
		if err != nil {
			return nil, "", fmt.Errorf("kubeconfig context %s: %w", name, err)
		}
		return cfg, SourceContext, nil
	}
	tried = append(tried, "no context "+name+" in the kubeconfig")
	cfg, err := fromSecret(ctx, name, raw, opts)
	if err != nil {
		tried = append(tried, err.Error())
		return nil, "", fmt.Errorf("%w: %s", ErrNoCredentials, joinTried(tried))
	}
	return cfg, SourceSecret, nil
}

func loadingRules(kubeconfig string) *clientcmd.ClientConfigLoadingRules {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.Precedence = filepath.SplitList(kubeconfig)
	}
	return rules
}

// fromSecret reads the kubeconfig in Secret fleetsync-cluster-<name> from the
// management cluster: the kubeconfig's current context, else in-cluster config.
func fromSecret(ctx context.Context, name string, raw *clientcmdapi.Config, opts ConnectOptions) (*rest.Config, error) {
	var mgmt *rest.Config
	if raw.CurrentContext != "" {
		c, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("management cluster (current context %s): %w", raw.CurrentContext, err)
		}
		mgmt = c
	} else {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, errors.New("no management cluster to read Secrets from (no current context, not in a cluster)")
		}
		mgmt = c
	}
	cs, err := kubernetes.NewForConfig(mgmt)
	if err != nil {
		return nil, fmt.Errorf("management cluster client: %w", err)
	}
	ns := opts.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, SecretPrefix+name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("no Secret %s/%s%s on the management cluster", ns, SecretPrefix, name)
		}
		return nil, fmt.Errorf("read Secret %s/%s%s: %w", ns, SecretPrefix, name, err)
	}
	data, ok := sec.Data[SecretKey]
	if !ok {
		return nil, fmt.Errorf("no key %q in Secret %s/%s%s", SecretKey, ns, SecretPrefix, name)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		// The error may quote the document; say only where it came from.
		return nil, fmt.Errorf("key %q of Secret %s/%s%s is not a valid kubeconfig", SecretKey, ns, SecretPrefix, name)
	}
	return cfg, nil
}

func joinTried(tried []string) string {
	out := ""
	for i, t := range tried {
		if i > 0 {
			out += "; "
		}
		out += t
	}
	return out
}
