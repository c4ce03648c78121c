#!/usr/bin/env bash
# The demo behind `make demo`: the fleetsync daemon on examples/fleet-repo,
# served by a git server on loopback, against the built-in local fleet
# (north, south, east), which the Makefile has started in $FLEET_DIR. The
# daemon keeps running after this script; `make demo-down` stops everything.
set -euo pipefail
: "${FLEET_DIR:?FLEET_DIR must name the local fleet directory}"
FLEETSYNC=${FLEETSYNC:-bin/fleetsync}
GITSERVE=${GITSERVE:-bin/gitserve}
LISTEN=${LISTEN:-127.0.0.1:8080}
REPO=examples/fleet-repo
DEMO="$FLEET_DIR/demo"
SERVER="http://$LISTEN"

# The local fleet's source registry is plain HTTP on loopback: say so explicitly.
SOURCE_REGISTRY=$(sed -n 's/.*"source": *"\([^"]*\)".*/\1/p' "$FLEET_DIR/registries.json")

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
git_() { git -C "$DEMO/git/fleet" -c user.name=demo -c user.email=demo@fleetsync.invalid "$@"; }
stop_pid() { [ -f "$1" ] && kill "$(cat "$1")" 2>/dev/null || true; rm -f "$1"; }

# A previous demo's daemon and git server are replaced.
stop_pid "$DEMO/fleetsync.pid"
stop_pid "$DEMO/gitserve.pid"
rm -rf "$DEMO"
mkdir -p "$DEMO/git"

step "validate: strict decoding, references and a render of every (cluster, app) pair"
"$FLEETSYNC" validate --repo "$REPO"

step "a git server on loopback serves the fleet repo"
cp -r "$REPO" "$DEMO/git/fleet"
# A short health timeout, so that the bad release below is rolled back in 30s, not 5m.
sed -i 's/healthTimeout: 5m/healthTimeout: 30s/' "$DEMO/git/fleet/apps/mes/app.yaml"
git_ init -q -b main
git_ add -A
git_ commit -qm "fleet"
"$GITSERVE" --root "$DEMO/git" --url-file "$DEMO/git.url" >"$DEMO/gitserve.log" 2>&1 &
echo $! >"$DEMO/gitserve.pid"
for _ in $(seq 50); do [ -s "$DEMO/git.url" ] && break; sleep 0.1; done
URL="$(cat "$DEMO/git.url")/fleet/.git"
echo "  $URL"

step "fleetsync run: the daemon reconciles north, south and east from $URL"
printf 'demo-secret' >"$DEMO/webhook.secret"
"$FLEETSYNC" run --repo "$URL" --branch main --kubeconfig-dir "$FLEET_DIR" --listen "$LISTEN" \
  --interval 15s --heartbeat-interval 5s --drift-interval 1m --log-format json \
  --github-webhook-secret-file "$DEMO/webhook.secret" --insecure-registry "$SOURCE_REGISTRY" \
  >"$DEMO/fleetsync.log" 2>&1 &
echo $! >"$DEMO/fleetsync.pid"
for _ in $(seq 300); do curl -fs "$SERVER/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
echo "  dashboard: $SERVER/   (status API: $SERVER/api/v1/status, metrics: $SERVER/metrics)"
echo "  log: $DEMO/fleetsync.log"

# wait_for TEXT: wait until `fleetsync status` shows TEXT (at most 3 minutes).
wait_for() {
  for _ in $(seq 180); do
    "$FLEETSYNC" status --server "$SERVER" 2>/dev/null | grep -q -- "$1" && return 0
    sleep 1
  done
  echo "  (still waiting for \"$1\"; see $DEMO/fleetsync.log)"
}
# webhook: what a git host sends on push, signed with the secret.
webhook() {
  body='{"ref":"refs/heads/main"}'
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$(cat "$DEMO/webhook.secret")" | sed 's/^.* //')
  curl -fs -o /dev/null -X POST -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: sha256=$sig" --data "$body" "$SERVER/hooks/github"
}

rev=$(git_ rev-parse --short HEAD)
wait_for "$rev"
sleep 3
"$FLEETSYNC" status --server "$SERVER"

step "a commit scales mes from 5 to 7 replicas: the canary wave (north) first, then the rest"
sed -i 's/replicas: 5/replicas: 7/' "$DEMO/git/fleet/apps/mes/base/deployment.yaml"
git_ commit -qam "mes: 7 replicas"
webhook
sleep 4
"$FLEETSYNC" status --server "$SERVER"
wait_for "Done"

step "a bad release (pods that never become ready) is stopped at north and rolled back there"
sed -i 's|^      labels:$|      annotations: {localfleet.fleetsync.dev/never-ready: "true"}\n      labels:|' \
  "$DEMO/git/fleet/apps/mes/base/deployment.yaml"
git_ commit -qam "mes: a release whose pods never become ready"
webhook
wait_for "RolledBack"
"$FLEETSYNC" status --server "$SERVER"

cat <<MSG

The daemon keeps running:
  dashboard      $SERVER/
  status         $FLEETSYNC status --server $SERVER
  the fleet repo $DEMO/git/fleet (commit there: the daemon fetches every 15s)
  logs           $DEMO/fleetsync.log
Stop everything with: make demo-down
MSG
