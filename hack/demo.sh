#!/usr/bin/env bash
# The demo behind `make demo`: fleetsync on examples/fleet-repo against the built-in
# local fleet (north, south, east), which the Makefile has started in $FLEET_DIR.
set -euo pipefail
: "${FLEET_DIR:?FLEET_DIR must name the local fleet directory}"
FLEETSYNC=${FLEETSYNC:-bin/fleetsync}
REPO=examples/fleet-repo
OUT=${OUT:-out}

# The local fleet's source registry is plain HTTP on loopback: say so explicitly.
SOURCE_REGISTRY=$(sed -n 's/.*"source": *"\([^"]*\)".*/\1/p' "$FLEET_DIR/registries.json")
REG=(--insecure-registry "$SOURCE_REGISTRY")

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "validate: strict decoding, references and a render of every (cluster, app) pair"
"$FLEETSYNC" validate --repo "$REPO"

step "render: per-cluster manifests into $OUT/rendered/<cluster>/<app>.yaml"
rm -rf "$OUT/rendered"
"$FLEETSYNC" render --repo "$REPO" --out "$OUT/rendered" "${REG[@]}"
find "$OUT/rendered" -name '*.yaml' | sort | sed 's/^/  /'
echo "storage classes per cluster (logical 'fast' mapped):"
grep -H 'storageClassName' "$OUT"/rendered/*/mes.yaml | sed 's/^/  /'
echo "images pinned into each cluster's mirror:"
grep -H 'image:' "$OUT"/rendered/*/mes.yaml | sed 's/^/  /'

step "plan: what a pull request that scales mes to 7 replicas and sets order-service's log level does, per cluster"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$REPO" "$work/repo"
(
  cd "$work/repo"
  git init -q -b main && git add -A
  git -c user.name=demo -c user.email=demo@fleetsync.invalid commit -qm "fleet"
  sed -i 's/replicas: 5/replicas: 7/' apps/mes/base/deployment.yaml
  sed -i 's/logLevel: info/logLevel: warn/' apps/order-service/values-prod.yaml
  git -c user.name=demo -c user.email=demo@fleetsync.invalid commit -qam "mes: 7 replicas; order-service: warn"
)
"$FLEETSYNC" plan --repo "$work/repo" --base HEAD~1 --head HEAD -o markdown "${REG[@]}" | head -60

step "apply: images mirrored into each cluster's registry and pinned by digest; each app rolled out wave by wave with health gates"
"$FLEETSYNC" apply --repo "$REPO" --kubeconfig-dir "$FLEET_DIR" "${REG[@]}"

step "diff: desired vs live (expect no drift)"
"$FLEETSYNC" diff --repo "$REPO" --kubeconfig-dir "$FLEET_DIR" "${REG[@]}"

step "drift: another field manager scales mes-deployment on north; diff reports it"
# env.sh puts the local fleet's own kubectl first on PATH.
# shellcheck disable=SC1091
. "$FLEET_DIR/env.sh"
kubectl --kubeconfig "$FLEET_DIR/north.kubeconfig" -n mes scale deployment/mes-deployment --replicas=1 >/dev/null
"$FLEETSYNC" diff --repo "$REPO" --kubeconfig-dir "$FLEET_DIR" "${REG[@]}" --cluster north || echo "(diff exit status $?: drift found, as expected)"
step "apply again corrects it"
"$FLEETSYNC" apply --repo "$REPO" --kubeconfig-dir "$FLEET_DIR" "${REG[@]}" --cluster north -o table | tail -8

cat <<MSG

The fleet keeps running. Try:
  export KUBECONFIG=$FLEET_DIR/north.kubeconfig
  kubectl get deployments -A     (after: . $FLEET_DIR/env.sh)
  $FLEETSYNC diff --repo $REPO --kubeconfig-dir $FLEET_DIR --insecure-registry $SOURCE_REGISTRY
  $FLEETSYNC mirror --repo $REPO --kubeconfig-dir $FLEET_DIR --insecure-registry $SOURCE_REGISTRY
Stop it with: make fleet-down
MSG
