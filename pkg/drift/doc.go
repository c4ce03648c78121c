// Package drift tells how a cluster differs from an app's desired state.
//
// Detect goes through the same apply.Manager as apply, in server-side dry-run, so
// apply and drift cannot disagree. Per object it reports in sync, drifted (with a
// unified YAML diff of live versus what an apply would make of it: fields another
// manager changed, fleetsync-owned fields set differently), missing (deleted out of
// band) or extra (in the app's inventory, no longer desired, still on the cluster).
// Fields the server populates (status, managedFields, resourceVersion, uid,
// creationTimestamp, generation) are ignored, and so are defaults, since the server
// adds them identically in the dry-run. Secret data and stringData values are never
// shown: a diff shows "***", and "*** (changed)" for a value that differs.
//
// Reconcile corrects drift (app drift mode "correct") by re-applying through the
// Manager, or only reports it ("report"). The package does not log.
package drift
