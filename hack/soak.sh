#!/usr/bin/env bash
# The soak behind `make soak` (a few minutes, not in CI; docs/security.md):
# `fleetsync run` as a process on a local fleet of 3 clusters, a commit every
# $SOAK_COMMIT_EVERY seconds (one app's ConfigMap changes), a person's drift
# (kubectl patch of a managed Deployment, corrected: drift: correct) every
# $SOAK_DRIFT_EVERY seconds, for $SOAK_SECONDS. It prints, at the start (after
# the first convergence) and at the end: RSS, goroutines, open file
# descriptors, and the mean reconcile cycle and commit -> applied latency of
# the last minute; and fails when a commit was not applied everywhere.
# The Makefile has started the local fleet in $FLEET_DIR (north, south, east).
set -euo pipefail
: "${FLEET_DIR:?FLEET_DIR must name the local fleet directory}"
FLEETSYNC=${FLEETSYNC:-bin/fleetsync}
GITSERVE=${GITSERVE:-bin/gitserve}
SECONDS_TOTAL=${SOAK_SECONDS:-300}
COMMIT_EVERY=${SOAK_COMMIT_EVERY:-5}
DRIFT_EVERY=${SOAK_DRIFT_EVERY:-30}
APPS=5
CLUSTERS=(north south east)
RUN="$FLEET_DIR/soak"
SERVER=http://127.0.0.1:8095
KUBECTL=$(sed -n 's/^export PATH="\(.*\)":.*/\1/p' "$FLEET_DIR/env.sh")/kubectl

rm -rf "$RUN"
mkdir -p "$RUN/git/fleet"
cleanup() {
  for p in "$RUN/fleetsync.pid" "$RUN/gitserve.pid"; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
}
trap cleanup EXIT
git_() { git -C "$RUN/git/fleet" -c user.name=soak -c user.email=soak@fleetsync.invalid "$@"; }

# write_app N V: app N with a Deployment and a ConfigMap at version V.
write_app() {
  local d="$RUN/git/fleet/apps/app$1"
  mkdir -p "$d/base"
  cat >"$d/app.yaml" <<EOF
apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: app$1}
spec:
  namespace: soak-app$1
  source: {kustomize: {path: base}}
  prune: true
  drift: correct
  targets: {clusterSelector: {}}
EOF
  echo "resources: [deployment.yaml, config.yaml]" >"$d/base/kustomization.yaml"
  cat >"$d/base/deployment.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "example.invalid/web:1"}]}
EOF
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {version: "%s"}\n' "$2" >"$d/base/config.yaml"
}

cat >"$RUN/git/fleet/fleet.yaml" <<EOF
apiVersion: fleetsync.dev/v1alpha1
kind: Fleet
metadata: {name: soak}
EOF
mkdir -p "$RUN/git/fleet/clusters"
for c in "${CLUSTERS[@]}"; do
  printf 'apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: %s}\n' "$c" >"$RUN/git/fleet/clusters/$c.yaml"
done
for a in $(seq 1 $APPS); do write_app "$a" 0; done
git_ init -q -b main
git_ add -A
git_ commit -qm v0
"$GITSERVE" --root "$RUN/git" --url-file "$RUN/git.url" >"$RUN/gitserve.log" 2>&1 &
echo $! >"$RUN/gitserve.pid"
for _ in $(seq 50); do [ -s "$RUN/git.url" ] && break; sleep 0.1; done
"$FLEETSYNC" run --repo "$(cat "$RUN/git.url")/fleet/.git" --branch main --kubeconfig-dir "$FLEET_DIR" --listen "${SERVER#http://}" \
  --interval 2s --heartbeat-interval 5s --drift-interval 10s --log-format json >"$RUN/fleetsync.log" 2>&1 &
echo $! >"$RUN/fleetsync.pid"
PID=$(cat "$RUN/fleetsync.pid")

# applied_everywhere REV: every app Synced at REV on every cluster.
applied_everywhere() {
  "$FLEETSYNC" status --server "$SERVER" -o json 2>/dev/null | python3 -c '
import json, sys
st = json.load(sys.stdin)
apps = [a for c in st["clusters"] for a in c["apps"]]
print("yes" if apps and all(a["sync"] == "Synced" and a.get("revision") == sys.argv[1] for a in apps) else "no")' "$1" 2>/dev/null || echo no
}
figures() { # label: RSS MB, goroutines, fds, mean reconcile seconds (cumulative)
  local rss fds gor sum cnt
  rss=$(($(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$PID/status") / 1024))
  fds=$(ls "/proc/$PID/fd" | wc -l)
  gor=$(curl -fs "$SERVER/metrics" | sed -n 's/^go_goroutines \([0-9]*\).*/\1/p')
  sum=$(curl -fs "$SERVER/metrics" | awk '/^fleetsync_reconcile_duration_seconds_sum/ {s += $2} END {print s + 0}')
  cnt=$(curl -fs "$SERVER/metrics" | awk '/^fleetsync_reconcile_duration_seconds_count/ {s += $2} END {print s + 0}')
  echo "$rss $gor $fds $sum $cnt"
}
head=$(git_ rev-parse HEAD)
for _ in $(seq 600); do [ "$(applied_everywhere "$head")" = yes ] && break; sleep 0.5; done
[ "$(applied_everywhere "$head")" = yes ] || { echo "soak: the first commit was not applied everywhere" >&2; exit 1; }
read -r rss0 gor0 fds0 sum0 cnt0 < <(figures)
echo "soak: ${SECONDS_TOTAL}s, a commit every ${COMMIT_EVERY}s, a drift every ${DRIFT_EVERY}s, $APPS apps on ${#CLUSTERS[@]} clusters"

start=$(date +%s)
commits=0
drifts=0
latencies=()
last_drift=$start
while [ $(($(date +%s) - start)) -lt "$SECONDS_TOTAL" ]; do
  commits=$((commits + 1))
  write_app $(((commits % APPS) + 1)) "$commits"
  git_ commit -qam "soak $commits"
  rev=$(git_ rev-parse HEAD)
  t0=$(date +%s.%N)
  if [ $(($(date +%s) - last_drift)) -ge "$DRIFT_EVERY" ]; then
    c=${CLUSTERS[$((drifts % ${#CLUSTERS[@]}))]}
    "$KUBECTL" --kubeconfig "$FLEET_DIR/$c.kubeconfig" -n soak-app1 scale deployment web --replicas 3 >/dev/null
    drifts=$((drifts + 1))
    last_drift=$(date +%s)
  fi
  ok=no
  for _ in $(seq 300); do
    [ "$(applied_everywhere "$rev")" = yes ] && { ok=yes; break; }
    sleep 0.2
  done
  [ "$ok" = yes ] || { echo "soak: commit $commits ($rev) not applied everywhere after 60s" >&2; exit 1; }
  latencies+=("$(python3 -c "import sys; print(round($(date +%s.%N) - $t0, 2))")")
  sleep "$COMMIT_EVERY"
done
sleep 15 # the last drift corrected, a few idle cycles
read -r rss1 gor1 fds1 sum1 cnt1 < <(figures)
replicas=$(for c in "${CLUSTERS[@]}"; do "$KUBECTL" --kubeconfig "$FLEET_DIR/$c.kubeconfig" -n soak-app1 get deployment web -o jsonpath='{.spec.replicas}'; echo; done | sort -u | paste -sd,)
n=${#latencies[@]}
first=$(printf '%s\n' "${latencies[@]:0:5}" | python3 -c 'import sys; v=[float(x) for x in sys.stdin]; print(round(sum(v)/len(v),2))')
last=$(printf '%s\n' "${latencies[@]: -5}" | python3 -c 'import sys; v=[float(x) for x in sys.stdin]; print(round(sum(v)/len(v),2))')
printf '\n%-44s %12s %12s\n' "figure" "start" "end"
printf '%-44s %12s %12s\n' "RSS (MB)" "$rss0" "$rss1"
printf '%-44s %12s %12s\n' "goroutines" "$gor0" "$gor1"
printf '%-44s %12s %12s\n' "open file descriptors" "$fds0" "$fds1"
printf '%-44s %12s %12s\n' "commit -> applied everywhere (s, mean of 5)" "$first" "$last"
printf '%-44s %12s %12s\n' "reconcile cycles so far" "$cnt0" "$cnt1"
printf '%s: %d commits applied everywhere, %d drifts injected; app1 replicas now %s (want 1: corrected)\n' "soak" "$n" "$drifts" "$replicas"
[ "$replicas" = 1 ] || { echo "soak: the injected drift was not corrected" >&2; exit 1; }
