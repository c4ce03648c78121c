package apply

import (
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FieldManager is the server-side apply field manager of fleetsync.
const FieldManager = "fleetsync"

// InventoryNamespace holds the inventories; InventoryPrefix prefixes their names.
const (
	InventoryNamespace = "fleetsync-system"
	InventoryPrefix    = "fleetsync-inv-"
)

// Values of the per-object annotations (see api/v1alpha1).
const (
	SSAIfNotPresent = "IfNotPresent"
	SSAIgnore       = "Ignore"
	PruneDisabled   = "disabled"
	RecreateEnabled = "enabled"
)

// Options configure a Manager.
type Options struct {
	// FieldManager names fleetsync's server-side apply manager (default "fleetsync").
	FieldManager string
	// ForceConflicts takes fields over from other managers (default true).
	ForceConflicts bool
	// InventoryNamespace holds the inventory ConfigMaps (default fleetsync-system).
	InventoryNamespace string
	// HistoryLimit is how many healthy revisions an inventory remembers (default 10).
	HistoryLimit int
	// Concurrency is how many objects of one stage are applied at once (default
	// 16; the client's QPS and burst still bound the request rate).
	Concurrency int
	// AppConcurrency is how many apps of one cluster ApplyApps applies at once
	// (default 4).
	AppConcurrency int
	// TakeOver lists the field managers whose fields fleetsync takes over before
	// applying (see takeover.go); default DefaultTakeOver. An empty, non-nil
	// list takes over nothing.
	TakeOver []string
	// PollInterval is how often health and deletions are polled (default 1s).
	PollInterval time.Duration
	// CRDTimeout bounds the wait for CRDs to be Established (default 1m).
	CRDTimeout time.Duration
	// DeleteTimeout bounds the wait for an object to be gone before it is
	// recreated (default 1m).
	DeleteTimeout time.Duration
}

// DefaultOptions returns the options NewManager uses for zero fields.
func DefaultOptions() Options {
	return Options{
		FieldManager:       FieldManager,
		ForceConflicts:     true,
		InventoryNamespace: InventoryNamespace,
		HistoryLimit:       10,
		Concurrency:        16,
		AppConcurrency:     4,
		TakeOver:           DefaultTakeOver,
		PollInterval:       time.Second,
		CRDTimeout:         time.Minute,
		DeleteTimeout:      time.Minute,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.FieldManager == "" {
		o.FieldManager = d.FieldManager
	}
	if o.InventoryNamespace == "" {
		o.InventoryNamespace = d.InventoryNamespace
	}
	if o.HistoryLimit <= 0 {
		o.HistoryLimit = d.HistoryLimit
	}
	if o.Concurrency <= 0 {
		o.Concurrency = d.Concurrency
	}
	if o.AppConcurrency <= 0 {
		o.AppConcurrency = d.AppConcurrency
	}
	if o.TakeOver == nil {
		o.TakeOver = d.TakeOver
	}
	if o.PollInterval <= 0 {
		o.PollInterval = d.PollInterval
	}
	if o.CRDTimeout <= 0 {
		o.CRDTimeout = d.CRDTimeout
	}
	if o.DeleteTimeout <= 0 {
		o.DeleteTimeout = d.DeleteTimeout
	}
	return o
}

// Request is one app's desired state on the Manager's cluster.
type Request struct {
	// App names the app; objects are labelled fleetsync.dev/app=<App>.
	App string
	// Fleet names the fleet (fleet.yaml metadata.name; may be empty); recorded in
	// the inventory so that a fleet only ever removes apps it applied itself.
	Fleet string
	// Revision is the fleet repo commit the objects were rendered from.
	Revision string
	// Namespace is the app's namespace: created when missing and not among Objects,
	// and given to namespaced objects that name none.
	Namespace string
	// Objects is the desired set, in render order. They are not modified.
	Objects []*unstructured.Unstructured
	// Prune deletes inventory objects that left the desired set.
	Prune bool
	// Incomplete says the desired set may be missing objects because loading,
	// fetching, rendering, mirroring or validation failed: nothing is pruned and the
	// inventory keeps every object it had, whatever Prune says.
	Incomplete bool
	// AllowMassPrune allows pruning more than half of the app's objects.
	AllowMassPrune bool
	// DryRun asks the server what would change (server-side dry-run); nothing is
	// written, not even the inventory.
	DryRun bool
	// Force deletes and recreates objects whose immutable fields changed, as if
	// each were annotated fleetsync.dev/recreate: enabled.
	Force bool
	// Wait waits for every object to be healthy (kstatus Current) after applying,
	// and records the revision as healthy in the inventory.
	Wait bool
	// Timeout bounds Wait (default 5m).
	Timeout time.Duration
	// Progress, when set, receives each object's change as soon as it is known,
	// one call at a time.
	Progress func(Change)
	// Images and SourceDigest are recorded in the inventory (see Inventory).
	Images       map[string]string
	SourceDigest string
	// InputsDigest identifies what the objects were rendered from (not the
	// revision). When it equals the inputs of the last successful apply, an
	// object whose content differs from what that apply wrote is random
	// output (randAlphaNum): it is not re-applied, and no hooks run (see
	// docs/apply.md "Random output"). Empty: no such protection.
	InputsDigest string
	// Observed, when set, is the app's inventory as the caller read it after
	// its own last write for the app (Observed.Inventory nil: none), and
	// Apply does not read it again: a rollout applies on what it decided on.
	Observed *Observation
}

// DefaultTimeout bounds Wait when Request.Timeout is zero.
const DefaultTimeout = 5 * time.Minute
