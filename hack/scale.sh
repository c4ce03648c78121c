#!/usr/bin/env bash
# The scale run behind `make scale` (a few minutes, not in CI): the fleetsync
# daemon as a process on a local fleet of $SCALE_CLUSTERS clusters with
# $SCALE_APPS apps each (a Deployment and $SCALE_OBJECTS - 1 ConfigMaps per
# app, rolled out to c01 first, then to the rest), the fleet repo on a git
# server on loopback; with SCALE_REPLICAS=2, two central replicas sharing the
# clusters (--shards auto, their Leases on c01). It prints the daemons' own
# figures, read from /proc and from their /metrics (summed over replicas):
#   first convergence; webhook -> a commit changing one app written on every
#   cluster; webhook -> a commit changing every app written, then healthy;
#   the API requests and time of a no-op cycle; RSS (now and peak, per
#   replica); CPU of an idle minute at the default heartbeat interval (30s);
#   goroutines.
# The Makefile has started the local fleet in $FLEET_DIR with the clusters
# c01..cNN. Everything it starts is stopped at the end.
set -euo pipefail
: "${FLEET_DIR:?FLEET_DIR must name the local fleet directory}"
FLEETSYNC=${FLEETSYNC:-bin/fleetsync}
GITSERVE=${GITSERVE:-bin/gitserve}
CLUSTERS=${SCALE_CLUSTERS:-10}
APPS=${SCALE_APPS:-20}
OBJECTS=${SCALE_OBJECTS:-100}
REPLICAS=${SCALE_REPLICAS:-1}
RUN="$FLEET_DIR/scale"
PAIRS=$((CLUSTERS * APPS))
SERVERS=()
for r in $(seq 1 "$REPLICAS"); do SERVERS+=("http://127.0.0.1:$((8090 + r))"); done

rm -rf "$RUN"
mkdir -p "$RUN/git/fleet"
cleanup() {
  for p in "$RUN"/fleetsync-*.pid "$RUN/gitserve.pid"; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
git_() { git -C "$RUN/git/fleet" -c user.name=scale -c user.email=scale@fleetsync.invalid "$@"; }

# tag_of APP TAG: the image tag of app APP at TAG (v3 changes app01 only).
tag_of() {
  if [ "$2" = v3 ]; then
    if [ "$1" = 01 ]; then echo v3; else echo v2; fi
  else
    echo "$2"
  fi
}

# The fleet repo: clusters c01..cNN (c01 is the canary), APPS apps of
# OBJECTS objects each.
write_repo() { # TAG
  local repo="$RUN/git/fleet" i c
  printf 'apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: scale}\n' >"$repo/fleet.yaml"
  mkdir -p "$repo/clusters"
  for i in $(seq -f %02g 1 "$CLUSTERS"); do
    c="c$i"
    wave=rest
    [ "$c" = c01 ] && wave=canary
    printf 'apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: %s, labels: {wave: %s}}\n' "$c" "$wave" >"$repo/clusters/$c.yaml"
  done
  for i in $(seq -f %02g 1 "$APPS"); do
    mkdir -p "$repo/apps/app$i/manifests"
    cat >"$repo/apps/app$i/app.yaml" <<YAML
apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: app$i}
spec:
  namespace: scale
  source: {kustomize: {path: manifests}}
  targets: {clusterSelector: {}}
  rollout:
    healthTimeout: 10m
    autoRollback: true
    waves:
      - clusterSelector: {matchLabels: {wave: canary}}
      - clusterSelector: {}
YAML
    cat >"$repo/apps/app$i/manifests/deploy.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: app$i}
spec:
  replicas: 1
  selector: {matchLabels: {app: app$i}}
  template:
    metadata: {labels: {app: app$i}}
    spec:
      containers: [{name: app, image: "example.invalid/app$i:$(tag_of "$i" "$1")"}]
YAML
    python3 -c '
import sys
path, n, app = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, "w") as f:
    for k in range(n):
        f.write(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {app}-cfg-{k:03d}}}\ndata: {{key: value-{k}, app: {app}}}\n")
' "$repo/apps/app$i/manifests/config.yaml" "$((OBJECTS - 1))" "app$i"
    printf 'resources: [deploy.yaml, config.yaml]\n' >"$repo/apps/app$i/manifests/kustomization.yaml"
  done
}

# synced REV [APP]: how many pairs are Synced and Healthy (at REV when given,
# of APP when given), over every replica.
synced() {
  local total=0 n srv
  for srv in "${SERVERS[@]}"; do
    n=$("$FLEETSYNC" status --server "$srv" -o json 2>/dev/null | python3 -c '
import json, sys
rev, app = sys.argv[1], sys.argv[2]
st = json.load(sys.stdin)
print(sum(1 for c in st["clusters"] for a in c["apps"]
          if a["sync"] == "Synced" and a["health"] == "Healthy" and (not rev or a.get("revision") == rev) and (not app or a["name"] == app)))' "${1:-}" "${2:-}" || echo 0)
    total=$((total + n))
  done
  echo "$total"
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
# LABEL, e.g. kind="read", when given) and over the replicas.
metric() {
  for srv in "${SERVERS[@]}"; do curl -fs "$srv/metrics"; done | python3 -c '
import sys
name, label = sys.argv[1], sys.argv[2]
total = 0.0
for line in sys.stdin:
    if line.startswith(name + "{") and label in line:
        total += float(line.rsplit(" ", 1)[1])
print(int(total))' "$1" "${2:-}"
}
proc() { # FIELD of /proc/PID/status of each replica, in MB, space-separated
  local p out=()
  for p in "$RUN"/fleetsync-*.pid; do
    out+=("$(($(sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$(cat "$p")/status") / 1024))")
  done
  echo "${out[*]}"
}
cputicks() {
  local p total=0
  for p in "$RUN"/fleetsync-*.pid; do total=$((total + $(awk '{print $14 + $15}' "/proc/$(cat "$p")/stat"))); done
  echo "$total"
}
webhook() {
  local body sig srv
  body='{"ref":"refs/heads/main"}'
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$(cat "$RUN/webhook.secret")" | sed 's/^.* //')
  for srv in "${SERVERS[@]}"; do
    curl -fs -o /dev/null -X POST -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: sha256=$sig" --data "$body" "$srv/hooks/github"
  done
}
# written_per_cluster: each cluster's count of configured objects, summed
# over the replicas, as "cluster=count" words.
written_per_cluster() {
  for srv in "${SERVERS[@]}"; do curl -fs "$srv/metrics"; done | python3 -c '
import re, sys
counts = {}
for line in sys.stdin:
    m = re.match(r"fleetsync_applied_objects_total\{(.*)\} (\S+)", line)
    if m and "action=\"configured\"" in m.group(1):
        c = re.search(r"cluster=\"([^\"]*)\"", m.group(1)).group(1)
        counts[c] = counts.get(c, 0) + float(m.group(2))
print(" ".join(f"{c}={int(n)}" for c, n in sorted(counts.items())))'
}
# per_cluster_writes BASE START: polls the replicas' metrics until every
# cluster has one more configured object than in BASE; prints the seconds
# from START until c01 had, until the first other cluster had, and until
# the last had.
per_cluster_writes() {
  python3 - "$1" "$2" "$CLUSTERS" "${SERVERS[@]}" <<'PY'
import re, sys, time, urllib.request
base = dict((w.split("=")[0], int(w.split("=")[1])) for w in sys.argv[1].split())
start, n, servers = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
t_canary = t_rest = None
for _ in range(60000):
    counts = {}
    for srv in servers:
        for line in urllib.request.urlopen(srv + "/metrics").read().decode().splitlines():
            m = re.match(r'fleetsync_applied_objects_total\{(.*)\} (\S+)', line)
            if m and 'action="configured"' in m.group(1):
                c = re.search(r'cluster="([^"]*)"', m.group(1)).group(1)
                counts[c] = counts.get(c, 0) + float(m.group(2))
    done = [c for c, v in counts.items() if v > base.get(c, 0)]
    now = time.time() - start
    if t_canary is None and "c01" in done:
        t_canary = now
    if t_rest is None and any(c != "c01" for c in done):
        t_rest = now
    if len(done) >= n:
        print(f"{t_canary or now:.2f} {t_rest or now:.2f} {now:.2f}")
        break
    time.sleep(0.02)
PY
}
# reconciles: each replica's lastReconcile and how many rollouts it has in
# flight, on one line.
reconciles() {
  local srv
  for srv in "${SERVERS[@]}"; do
    "$FLEETSYNC" status --server "$srv" -o json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["lastReconcile"], len(s["inFlight"]))'
  done | paste -sd' '
}
# measure N REV APP COUNT: seconds from $start until COUNT more objects were
# configured than $applied0 ("written"), and until N pairs (of APP) are
# healthy at REV.
measure() {
  local n=$1 rev=$2 app=$3 count=$4 written=""
  for _ in $(seq 6000); do
    if [ -z "$written" ] && [ "$(metric fleetsync_applied_objects_total 'action="configured"')" -ge "$((applied0 + count))" ]; then
      written=$(secs "$start" "$(now)")
    fi
    [ "$(synced "$rev" "$app")" -ge "$n" ] && break
    sleep 0.1
  done
  local healthy
  healthy=$(secs "$start" "$(now)")
  echo "${written:-$healthy} $healthy"
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

echo "scale run: $CLUSTERS clusters x $APPS apps x $OBJECTS objects = $PAIRS pairs, $((PAIRS * OBJECTS)) objects; $REPLICAS replica(s)"
start=$(now)
for r in $(seq 1 "$REPLICAS"); do
  shard=()
  if [ "$REPLICAS" -gt 1 ]; then
    shard=(--shards auto --identity "replica-$r" --lease-kubeconfig "$FLEET_DIR/c01.kubeconfig")
  fi
  "$FLEETSYNC" run --repo "$URL" --branch main --kubeconfig-dir "$FLEET_DIR" --listen "127.0.0.1:$((8090 + r))" \
    --interval 10m --log-format json --github-webhook-secret-file "$RUN/webhook.secret" ${shard[@]+"${shard[@]}"} ${SCALE_DAEMON_ARGS:-} \
    >"$RUN/fleetsync-$r.log" 2>&1 &
  echo $! >"$RUN/fleetsync-$r.pid"
done
for srv in "${SERVERS[@]}"; do
  for _ in $(seq 300); do curl -fs "$srv/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
done
wait_pairs "$PAIRS"
first=$(secs "$start" "$(now)")
cpu_first=$(cputicks)
rss_first=$(proc VmRSS)
# With SCALE_PPROF_DIR (and SCALE_DAEMON_ARGS=--debug-pprof), each
# replica's heap profile after the first convergence and at the end.
heap_profile() {
  [ -n "${SCALE_PPROF_DIR:-}" ] || return 0
  mkdir -p "$SCALE_PPROF_DIR"
  local r=0 srv
  for srv in "${SERVERS[@]}"; do
    r=$((r + 1))
    curl -fs -o "$SCALE_PPROF_DIR/heap-$1-$r.pprof" "$srv/debug/pprof/heap?gc=1" || echo "no heap profile from $srv" >&2
  done
}
heap_profile converged

# A commit that changes every app's Deployment: webhook -> every pair's
# Deployment written, then every pair healthy.
write_repo v2
git_ commit -qam v2
v2=$(git_ rev-parse HEAD)
applied0=$(metric fleetsync_applied_objects_total 'action="configured"')
start=$(now)
webhook
# Only the objects whose content changed are written (the others keep the
# fleetsync.dev/revision of the commit that last changed them): one
# Deployment per pair.
cpu_v2=$(cputicks)
read -r written healthy < <(measure "$PAIRS" "$v2" "" "$PAIRS")
cpu_v2=$(( $(cputicks) - cpu_v2 ))

# A commit that changes one app's Deployment: webhook -> written on every
# cluster, then healthy everywhere. The app rolls out to c01 first and to
# the rest once it is healthy there: the per-cluster write counters give
# when c01 was written, when the first of the rest was, and when the last
# was; the time between the first two is the canary's health gate, left out
# of the "without health time" figure.
sleep 2
write_repo v3
git_ commit -qam "v3: app01"
v3=$(git_ rev-parse HEAD)
applied0=$(metric fleetsync_applied_objects_total 'action="configured"')
base=$(written_per_cluster)
start=$(now)
webhook
read -r t_canary t_rest t_all < <(per_cluster_writes "$base" "$start")
read -r _ one_healthy < <(measure "$CLUSTERS" "$v3" app01 "$CLUSTERS")
one_gate=$(python3 -c "print(f'{$t_rest - $t_canary:.2f}')")
one_nohealth=$(python3 -c "print(f'{$t_all - ($t_rest - $t_canary):.2f}')")

# A no-op cycle: nothing new in git, nothing changed on the clusters.
sleep 2
r0=$(metric fleetsync_kube_requests_total 'kind="read"')
w0=$(metric fleetsync_kube_requests_total 'kind="write"')
before=$(reconciles)
start=$(now)
webhook
for _ in $(seq 600); do
  st=$(reconciles | python3 -c '
import sys
before, now = sys.argv[1].split(), sys.stdin.read().split()
print("done" if all(now[i] != before[i] and now[i + 1] == "0" for i in range(0, len(now), 2)) else "")' "$before")
  [ "$st" = done ] && break
  sleep 0.1
done
cycle=$(secs "$start" "$(now)")
r1=$(metric fleetsync_kube_requests_total 'kind="read"')
w1=$(metric fleetsync_kube_requests_total 'kind="write"')

# An idle minute at the default heartbeat interval (a drift check, every
# 5 minutes, may fall in it), its RSS sampled every second.
c0=$(cputicks)
rss_idle=()
for _ in $(seq 60); do
  rss_idle+=("$(( $(proc VmRSS | tr ' ' '+') ))")
  sleep 1
done
c1=$(cputicks)
rss_idle_summary=$(printf '%s\n' "${rss_idle[@]}" | sort -n | awk '{a[NR]=$1} END {printf "min %d, median %d, max %d", a[1], a[int((NR+1)/2)], a[NR]}')
hz=$(getconf CLK_TCK)
goroutines=$(for srv in "${SERVERS[@]}"; do curl -fs "$srv/metrics" | sed -n 's/^go_goroutines \([0-9]*\).*/\1/p'; done | paste -sd' ')

heap_profile end

printf '\n%-56s %s\n' "figure ($CLUSTERS clusters x $APPS apps x $OBJECTS objects, $REPLICAS replica(s))" "measured"
printf '%-56s %s s\n' "first convergence (every pair applied and healthy)" "$first"
printf '%-56s %s s (c01 written %s s, its health gate %s s, last cluster written %s s, healthy everywhere %s s)\n' \
  "webhook -> one app's commit written everywhere, without health time" "$one_nohealth" "$t_canary" "$one_gate" "$t_all" "$one_healthy"
printf '%-56s %s s (healthy %s s)\n' "webhook -> every app's commit written on every cluster" "$written" "$healthy"
printf '%-56s %s writes, %s reads (%s per pair, heartbeats included) in %s s\n' "no-op cycle" "$((w1 - w0))" "$((r1 - r0))" \
  "$(python3 -c "print(f'{($r1 - $r0) / $PAIRS:.2f}')")" "$cycle"
printf '%-56s %s MB (after the first convergence: %s MB)\n' "daemon RSS now, per replica" "$(proc VmRSS)" "$rss_first"
printf '%-56s %s MB\n' "daemon RSS over the idle minute, all replicas" "$rss_idle_summary"
printf '%-56s %s MB\n' "daemon peak RSS (VmHWM), per replica" "$(proc VmHWM)"
printf '%-56s %s\n' "Go heap in use / idle (not returned) / goal, per replica" "$(for srv in "${SERVERS[@]}"; do curl -fs "$srv/metrics" | python3 -c '
import sys
m = {l.split()[0]: float(l.split()[1]) for l in sys.stdin if l.startswith("go_memstats_") and not l.startswith("#")}
idle = m["go_memstats_heap_idle_bytes"] - m["go_memstats_heap_released_bytes"]
inuse, goal = m["go_memstats_heap_inuse_bytes"], m["go_memstats_next_gc_bytes"]
print(f"{inuse/2**20:.0f} / {idle/2**20:.0f} / {goal/2**20:.0f} MiB")'; done | paste -sd' ')"
printf '%-56s %s CPU-s (first convergence), %s CPU-s (every app'"'"'s commit)\n' "daemon CPU, all replicas" \
  "$(python3 -c "print(f'{$cpu_first / $hz:.1f}')")" "$(python3 -c "print(f'{$cpu_v2 / $hz:.1f}')")"
printf '%-56s %s CPU-s\n' "CPU of an idle minute (30s heartbeats), all replicas" "$(python3 -c "print(f'{($c1 - $c0) / $hz:.2f}')")"
printf '%-56s %s\n' "goroutines, per replica" "$goroutines"
