// Package apply makes rendered objects real on one cluster.
//
// A Manager is built once per cluster (NewManager) and applies an app's objects with
// server-side apply (field manager "fleetsync", conflicts forced by default), in
// stages: CRDs and Namespaces first (then it waits for the CRDs to be Established
// and refreshes the REST mapping), other cluster-scoped objects, then namespaced
// objects. An object whose live state already matches the desired state gets no
// write call: the Manager first compares the fields fleetsync owns on the live
// object (managedFields) with the desired object, and when that is not conclusive
// asks the API server for a server-side dry-run apply and compares its result with
// the live object. Only when they differ does it apply for real.
//
// Per object, the annotation fleetsync.dev/ssa set to "IfNotPresent" creates but
// never updates, "Ignore" skips. A change to an immutable field fails with an error
// naming the object and the field, unless the object (fleetsync.dev/recreate:
// enabled) or the request (Force) allows delete-and-recreate.
//
// Every (cluster, app) has an inventory, a ConfigMap fleetsync-inv-<app> in namespace
// fleetsync-system: the applied object references, the revision, a digest of the
// desired set, and the last healthy revisions (for rollback). Prune deletes what is
// in the inventory but no longer desired, in reverse stage order; it never runs when
// the request is Incomplete (loading, fetching, rendering, mirroring or validation
// failed), refuses to delete more than half of an app's objects unless
// AllowMassPrune, keeps objects annotated fleetsync.dev/prune: disabled, and keeps
// failed deletes in the inventory.
//
// Before applying an object that a person changed with kubectl (edit, patch,
// scale, label, annotate, client-side apply: Options.TakeOver), the Manager takes
// over those fields into its own apply entry, so that the apply restores the
// desired object instead of merging with the change (takeover.go).
//
// Objects annotated helm.sh/hook are Helm hooks (hooks.go): they are not applied
// with the others but run around them as Helm runs them, pre-install or
// pre-upgrade hooks first and post-* hooks once the other objects are healthy,
// one at a time by weight, each waited for, with Helm's delete policies; only
// when the desired digest changed since the last successful apply. A failed
// hook stops the app (ErrUnhealthy). Hooks are not in the inventory, and
// helm.sh/resource-policy: keep keeps an object like fleetsync.dev/prune: disabled.
//
// One object the API server rejects does not stop the others: every result is an
// entry of the ChangeSet, and every error names cluster, app and object; KindOf
// classifies errors for schedulers (transient, needs a person, unhealthy,
// canceled) and Brief shortens them to one line. Health is kstatus
// (sigs.k8s.io/cli-utils); ApplyApps applies one cluster's apps in dependsOn order,
// independent apps concurrently, each after its dependencies are healthy.
// Uninstall removes an app that left the cluster.
//
// The package knows one cluster only: it does not load or render the fleet repo,
// decide what to remove from a fleet's point of view, run rollouts across clusters
// (pkg/reconcile does), or log.
package apply
