#!/usr/bin/env bash
# The scale run behind `make scale` (a few minutes, not in CI): the fleetsync
# daemon as a process on a local fleet of $SCALE_CLUSTERS clusters with
# $SCALE_APPS apps each (a Deployment per app, rolled out to c01 first, then
# to the rest), the fleet repo on a git server on loopback. It prints the
# daemon's own figures, read from /proc and from its /metrics:
#   first convergence; webhook -> every pair written, then healthy; the API
#   requests of a no-op cycle per (cluster, app); RSS (now and peak); CPU of an
#   idle minute at the default heartbeat interval (30s); goroutines.
# The Makefile has started the local fleet in $FLEET_DIR with the clusters
# c01..cNN. Everything it starts is stopped at the end.
set -euo pipefail
: "${FLEET_DIR:?FLEET_DIR must name the local fleet directory}"
FLEETSYNC=${FLEETSYNC:-bin/fleetsync}
GITSERVE=${GITSERVE:-bin/gitserve}
CLUSTERS=${SCALE_CLUSTERS:-10}
APPS=${SCALE_APPS:-20}
LISTEN=${LISTEN:-127.0.0.1:8091}
SERVER="http://$LISTEN"
RUN="$FLEET_DIR/scale"
PAIRS=$((CLUSTERS * APPS))

rm -rf "$RUN"
mkdir -p "$RUN/git/fleet"
cleanup() {
  for p in "$RUN/fleetsync.pid" "$RUN/gitserve.pid"; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
git_() { git -C "$RUN/git/fleet" -c user.name=scale -c user.email=scale@fleetsync.invalid "$@"; }

# The fleet repo: clusters c01..cNN (c01 is the canary), APPS apps.
write_repo() { # TAG
  local repo="$RUN/git/fleet" i c
  printf 'apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: scale}\n' >"$repo/fleet.yaml"
  mkdir -p "$repo/clusters"
  for i in $(seq -w 1 "$CLUSTERS"); do
    c="c$i"
    wave=rest
    [ "$c" = c01 ] && wave=canary
    printf 'apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: %s, labels: {wave: %s}}\n' "$c" "$wave" >"$repo/clusters/$c.yaml"
  done
  for i in $(seq -w 1 "$APPS"); do
    mkdir -p "$repo/apps/app$i/manifests"
    cat >"$repo/apps/app$i/app.yaml" <<EOF
apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: app$i}
spec:
  namespace: scale
  source: {kustomize: {path: manifests}}
  targets: {clusterSelector: {}}
  rollout:
    healthTimeout: 2m
    autoRollback: true
    waves:
      - clusterSelector: {matchLabels: {wave: canary}}
      - clusterSelector: {}
EOF
    cat >"$repo/apps/app$i/manifests/deploy.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: app$i}
spec:
  replicas: 1
  selector: {matchLabels: {app: app$i}}
  template:
    metadata: {labels: {app: app$i}}
    spec:
      containers: [{name: app, image: "example.invalid/app$i:$1"}]
EOF
    printf 'resources: [deploy.yaml]\n' >"$repo/apps/app$i/manifests/kustomization.yaml"
  done
}

# synced REV: how many pairs are Synced and Healthy (at REV when given).
synced() {
  "$FLEETSYNC" status --server "$SERVER" -o json 2>/dev/null | python3 -c '
import json, sys
rev = sys.argv[1]
st = json.load(sys.stdin)
print(sum(1 for c in st["clusters"] for a in c["apps"]
          if a["sync"] == "Synced" and a["health"] == "Healthy" and (not rev or a.get("revision") == rev)))' "${1:-}" || echo 0
}
# wait_pairs N REV: wait until N pairs are synced (at most 10 minutes).
wait_pairs() {
  for _ in $(seq 3000); do
    [ "$(synced "${2:-}")" -ge "$1" ] && return 0
    sleep 0.2
  done
  echo "timed out waiting for $1 pairs at ${2:-any revision}" >&2
  exit 1
}
# metric NAME [LABEL]: the sum of a counter over its series (those with
# LABEL, e.g. kind="read", when given).
metric() {
  curl -fs "$SERVER/metrics" | python3 -c '
import sys
name, label = sys.argv[1], sys.argv[2]
total = 0.0
for line in sys.stdin:
    if line.startswith(name + "{") and label in line:
        total += float(line.rsplit(" ", 1)[1])
print(int(total))' "$1" "${2:-}"
}
proc() { # FIELD of /proc/PID/status, in kB
  sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$(cat "$RUN/fleetsync.pid")/status"
}
cputicks() { awk '{print $14 + $15}' "/proc/$(cat "$RUN/fleetsync.pid")/stat"; }
webhook() {
  body='{"ref":"refs/heads/main"}'
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$(cat "$RUN/webhook.secret")" | sed 's/^.* //')
  curl -fs -o /dev/null -X POST -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: sha256=$sig" --data "$body" "$SERVER/hooks/github"
}

write_repo v1
git_ init -q -b main
git_ add -A
git_ commit -qm v1
"$GITSERVE" --root "$RUN/git" --url-file "$RUN/git.url" >"$RUN/gitserve.log" 2>&1 &
echo $! >"$RUN/gitserve.pid"
for _ in $(seq 50); do [ -s "$RUN/git.url" ] && break; sleep 0.1; done
URL="$(cat "$RUN/git.url")/fleet/.git"
printf 'scale-secret' >"$RUN/webhook.secret"

echo "scale run: $CLUSTERS clusters x $APPS apps = $PAIRS pairs"
start=$(now)
"$FLEETSYNC" run --repo "$URL" --branch main --kubeconfig-dir "$FLEET_DIR" --listen "$LISTEN" \
  --interval 10m --log-format json --github-webhook-secret-file "$RUN/webhook.secret" \
  >"$RUN/fleetsync.log" 2>&1 &
echo $! >"$RUN/fleetsync.pid"
for _ in $(seq 300); do curl -fs "$SERVER/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
wait_pairs "$PAIRS"
first=$(secs "$start" "$(now)")
rss_first=$(proc VmRSS)

# A commit that changes every app: webhook -> every pair written, then healthy.
write_repo v2
git_ commit -qam v2
v2=$(git_ rev-parse HEAD)
applied0=$(metric fleetsync_applied_objects_total 'action="configured"')
start=$(now)
webhook
written=""
for _ in $(seq 3000); do
  if [ -z "$written" ] && [ "$(metric fleetsync_applied_objects_total 'action="configured"')" -ge "$((applied0 + PAIRS))" ]; then
    written=$(secs "$start" "$(now)")
  fi
  [ "$(synced "$v2")" -ge "$PAIRS" ] && break
  sleep 0.2
done
healthy=$(secs "$start" "$(now)")
: "${written:=$healthy}"

# A no-op cycle: nothing new in git, nothing changed on the clusters.
sleep 2
r0=$(metric fleetsync_kube_requests_total 'kind="read"')
w0=$(metric fleetsync_kube_requests_total 'kind="write"')
before=$("$FLEETSYNC" status --server "$SERVER" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["lastReconcile"])')
webhook
for _ in $(seq 300); do
  st=$("$FLEETSYNC" status --server "$SERVER" -o json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("done" if s["lastReconcile"] != sys.argv[1] and not s["inFlight"] else "")' "$before")
  [ "$st" = done ] && break
  sleep 0.1
done
r1=$(metric fleetsync_kube_requests_total 'kind="read"')
w1=$(metric fleetsync_kube_requests_total 'kind="write"')

# An idle minute at the default heartbeat interval.
c0=$(cputicks)
sleep 60
c1=$(cputicks)
hz=$(getconf CLK_TCK)
goroutines=$(curl -fs "$SERVER/metrics" | sed -n 's/^go_goroutines \([0-9]*\).*/\1/p')

printf '\n%-52s %s\n' "figure ($CLUSTERS clusters x $APPS apps)" "measured"
printf '%-52s %s s\n' "first convergence (every pair applied and healthy)" "$first"
printf '%-52s %s s\n' "webhook -> every pair written (v2)" "$written"
printf '%-52s %s s\n' "webhook -> every pair healthy on v2" "$healthy"
printf '%-52s %s writes, %s reads (%s per pair, heartbeats included)\n' "no-op cycle" "$((w1 - w0))" "$((r1 - r0))" \
  "$(python3 -c "print(f'{($r1 - $r0) / $PAIRS:.2f}')")"
printf '%-52s %s MB (after the first convergence: %s MB)\n' "daemon RSS now" "$(($(proc VmRSS) / 1024))" "$((rss_first / 1024))"
printf '%-52s %s MB\n' "daemon peak RSS (VmHWM)" "$(($(proc VmHWM) / 1024))"
printf '%-52s %s CPU-s\n' "CPU of an idle minute (30s heartbeats)" "$(python3 -c "print(f'{($c1 - $c0) / $hz:.2f}')")"
printf '%-52s %s\n' "goroutines" "$goroutines"
