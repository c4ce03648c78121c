package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"time"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

// RequestOptions are a run's settings that every pair's request shares.
type RequestOptions struct {
	// DryRun asks the servers what would change; nothing is written or waited for.
	DryRun bool
	// AllowMassPrune allows an app to lose more than half of its objects, and
	// more than half of a cluster's apps to be removed at once.
	AllowMassPrune bool
	// Timeout is the health timeout of apps whose rollout (or the fleet) sets
	// none (default apply.DefaultTimeout).
	Timeout time.Duration
	// TimeoutOverrides makes Timeout every app's health timeout, whatever the
	// repo says (an explicit --timeout).
	TimeoutOverrides bool
	// Progress receives every object's change as soon as it is known, one call
	// at a time.
	Progress func(apply.Change)
	// Events receives each step of each app's rollout (Apply only), one call
	// at a time.
	Events func(RolloutEvent)
	// Mirrored receives each image copy of Apply's mirroring, one at a time.
	Mirrored func(MirrorEvent)
	// KeepHealthy leaves alone the pairs that are already healthy on their
	// target: Apply then neither applies them again nor reads their objects
	// one app at a time (the daemon: drift is its own check, every
	// drift interval, per the app's drift policy). Without it, Apply applies
	// every pair once more, which corrects drift (the CLI's apply).
	KeepHealthy bool
	// Only, when set, limits Apply and Diff to the apps it accepts (the
	// daemon rolls each app out on its own). Removal is judged on the whole
	// desired set, so with Only nothing is removed (Apply) or reported as
	// removed (Diff): RemoveDeparted does that.
	Only func(app string) bool
	// Remote, when set, gives the state of the clusters not in Local, and
	// only the clusters in Local are written to (applied, rolled back, held,
	// pruned, drift-corrected): an agent rolls out its own cluster and gates
	// its waves on what the other agents published (see pkg/hub). The same
	// engine decides, from their facts as from local ones.
	Remote func(app, cluster string) RemoteState
	Local  []string
	// Owned, when set, limits writing to the clusters it accepts, like Local,
	// but the other clusters are observed directly, read-only, for the
	// rollout's facts: sharded central replicas (the daemon's --shards) each
	// roll out the clusters they hold and gate their waves on the others'
	// clusters as they are.
	Owned func(cluster string) bool
}

func (o RequestOptions) accepts(app string) bool { return o.Only == nil || o.Only(app) }

// local reports whether this process may write to the cluster (see Local).
func (o RequestOptions) local(cluster string) bool {
	return (o.Remote == nil || slices.Contains(o.Local, cluster)) && (o.Owned == nil || o.Owned(cluster))
}

// remote reports whether the cluster's facts come from Remote (another
// agent's word) rather than from the cluster itself.
func (o RequestOptions) remote(cluster string) bool {
	return o.Remote != nil && !slices.Contains(o.Local, cluster)
}

// RemoteState is an app on a cluster that another agent reconciles, as that
// agent published it on the hub (agent mode with a hub).
type RemoteState struct {
	// Target is the revision the other agent rolls out, OnTarget whether
	// its cluster has that revision's output.
	Target   string
	OnTarget bool
	// Revision and Digest are what is applied there, AppliedAt since when.
	Revision, Digest string
	AppliedAt        time.Time
	Health           rollout.Health
	HealthySince     time.Time
	Holds            []rollout.Hold
	// Problem, when set, makes the cluster unreachable for the rollout (no
	// state on the hub, a stale heartbeat).
	Problem string
}

// Request builds the apply request of one (cluster, app) pair. It is the only
// place a pair's request is made: apply, apply --dry-run, diff, drift
// correction and the daemon all use it, so they agree on the fleet name, the
// revision, the namespace, prune, the health timeout and whether the desired
// set is complete. incomplete is true when any pair of the cluster failed to
// render (then nothing is pruned there).
func Request(repo *fleet.Repo, ar *render.AppResult, incomplete bool, o RequestOptions) apply.AppRequest {
	req := apply.AppRequest{Request: apply.Request{
		App:            ar.App,
		Fleet:          FleetName(repo),
		Revision:       revisionOf(repo),
		Objects:        ar.Objects,
		InputsDigest:   ar.InputsDigest,
		DryRun:         o.DryRun,
		AllowMassPrune: o.AllowMassPrune,
		Incomplete:     incomplete || ar.Err != nil,
		Wait:           !o.DryRun,
		Timeout:        o.Timeout,
		Progress:       o.Progress,
	}}
	if req.Timeout <= 0 {
		req.Timeout = apply.DefaultTimeout
	}
	if app := repo.App(ar.App); app != nil {
		req.Namespace = app.Spec.Namespace
		req.Prune = app.Spec.Prune
		req.DependsOn = app.Spec.DependsOn
		if t := healthTimeout(repo, app); t > 0 && !o.TimeoutOverrides {
			req.Timeout = t
		}
	}
	return req
}

// pinInputs adds a pair's image pins to its render inputs: the same tag
// pinned to a new digest is a change, never random output.
func pinInputs(inputs string, pins map[string]string) string {
	if inputs == "" || len(pins) == 0 {
		return inputs
	}
	keys := make([]string, 0, len(pins))
	for k := range pins {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	h.Write([]byte(inputs))
	for _, k := range keys {
		h.Write([]byte("\x00" + k + "=" + pins[k]))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// FleetName is the fleet's name from fleet.yaml ("" without one). An
// inventory belongs to this fleet when its fleet name is the same, the empty
// name included (see docs/apply.md "Which apps are ours").
func FleetName(repo *fleet.Repo) string {
	if repo.Fleet == nil {
		return ""
	}
	return repo.Fleet.Metadata.Name
}

// owns reports whether an inventory was written by this fleet.
func owns(repo *fleet.Repo, inv *apply.Inventory) bool {
	return inv != nil && inv.Fleet == FleetName(repo)
}

func revisionOf(repo *fleet.Repo) string {
	if repo.Revision == "" {
		return render.LocalRevision
	}
	return repo.Revision
}

func healthTimeout(repo *fleet.Repo, app *v1alpha1.App) time.Duration {
	if app.Spec.Rollout != nil && app.Spec.Rollout.HealthTimeout != nil {
		return app.Spec.Rollout.HealthTimeout.Duration
	}
	if repo.Fleet != nil && repo.Fleet.Spec.HealthTimeout != nil {
		return repo.Fleet.Spec.HealthTimeout.Duration
	}
	return 0
}
