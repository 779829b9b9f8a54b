#!/usr/bin/env bash
# The kind path (needs Docker): a local cluster with both charts installed and a switchover/failover
# drill through the real Service (tests/e2e). `make kind-up`, `make kind-e2e` and `make kind-down` call this;
# .github/workflows/e2e.yaml runs it in CI. It cannot run where Docker has no engine.
set -eEuo pipefail
[[ "${DEBUG:-false}" == "true" ]] && set -x

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/versions.env
source "$ROOT/hack/versions.env"
export PATH="${TOOLS_DIR:-$ROOT/.tools}/bin:$PATH"

KIND_CLUSTER=${KIND_CLUSTER:-tier0}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.34.0}
IMAGE_REGISTRY=${IMAGE_REGISTRY:-tier0}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
NAMESPACE=${NAMESPACE:-tier0}
OPERATOR_NAMESPACE=${OPERATOR_NAMESPACE:-tier0-system}
TIMEOUT=${TIMEOUT:-300s}
PAIR=tier0

usage() {
  cat <<USAGE
Usage: hack/kind.sh up|e2e|down [-h]

  up    create the kind cluster (if missing), load the images built by \`make images\`, install
        charts/tier0-operator and charts/tier0 (hack/kind-values.yaml), wait for the RegionPair Healthy
  e2e   the e2e tier (tests/e2e: helm test, seed endpoints, switchover, failover and faults
        through the real Service) against this cluster
  down  delete the cluster

Environment:
  KIND_CLUSTER        cluster name (now ${KIND_CLUSTER})
  KIND_NODE_IMAGE     node image (now ${KIND_NODE_IMAGE})
  IMAGE_REGISTRY      image prefix used by make images (now ${IMAGE_REGISTRY})
  IMAGE_TAG           image tag (now ${IMAGE_TAG})
  NAMESPACE           namespace of the tier0 chart (now ${NAMESPACE})
  OPERATOR_NAMESPACE  namespace of the operator chart (now ${OPERATOR_NAMESPACE})
  TIMEOUT             per wait (now ${TIMEOUT})
  DEBUG=true          trace every command
USAGE
}

log() { printf '\033[1m[kind]\033[0m %s\n' "$*" >&2; }
k() { kubectl --context "kind-${KIND_CLUSTER}" "$@"; }

up() {
  for tool in kind helm kubectl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: hack/install-tools.sh --only $tool (kubectl: https://kubernetes.io/docs/tasks/tools/)" >&2; exit 1; }
  done
  command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "kind needs a running Docker engine" >&2; exit 1; }
  if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    log "creating cluster $KIND_CLUSTER ($KIND_NODE_IMAGE)"
    kind create cluster --name "$KIND_CLUSTER" --image "$KIND_NODE_IMAGE" --wait 120s
  fi
  for c in operator services simulators; do
    log "loading $IMAGE_REGISTRY/$c:$IMAGE_TAG"
    kind load docker-image --name "$KIND_CLUSTER" "$IMAGE_REGISTRY/$c:$IMAGE_TAG"
  done
  log "installing charts/tier0-operator into $OPERATOR_NAMESPACE"
  helm --kube-context "kind-${KIND_CLUSTER}" upgrade --install tier0-operator "$ROOT/charts/tier0-operator" \
    -n "$OPERATOR_NAMESPACE" --create-namespace --wait --timeout "$TIMEOUT" -f "$ROOT/hack/kind-operator-values.yaml" \
    --set image.repository="$IMAGE_REGISTRY/operator" --set image.tag="$IMAGE_TAG"
  log "installing charts/tier0 into $NAMESPACE"
  helm --kube-context "kind-${KIND_CLUSTER}" upgrade --install tier0 "$ROOT/charts/tier0" \
    -n "$NAMESPACE" --create-namespace --wait --timeout "$TIMEOUT" -f "$ROOT/hack/kind-values.yaml" \
    --set images.services.repository="$IMAGE_REGISTRY/services" --set images.services.tag="$IMAGE_TAG" \
    --set images.simulators.repository="$IMAGE_REGISTRY/simulators" --set images.simulators.tag="$IMAGE_TAG" \
    --set networkPolicy.operatorNamespace="$OPERATOR_NAMESPACE"
  wait_phase Healthy
  k -n "$NAMESPACE" get regionpair "$PAIR"
}

wait_phase() {
  log "waiting for RegionPair $PAIR phase $1"
  k -n "$NAMESPACE" wait "regionpair/$PAIR" --for=jsonpath='{.status.phase}'="$1" --timeout="$TIMEOUT"
}

# The e2e tier (tests/e2e) against this cluster: the same tests `make test` runs on the built-in node.
e2e() {
  mkdir -p "$ROOT/.run"
  kind get kubeconfig --name "$KIND_CLUSTER" >"$ROOT/.run/kind-kubeconfig"
  TIER0_E2E_KUBECONFIG="$ROOT/.run/kind-kubeconfig" \
  TIER0_E2E_VALUES="$ROOT/hack/kind-values.yaml" \
  TIER0_E2E_OPERATOR_VALUES="$ROOT/hack/kind-operator-values.yaml" \
    "$ROOT/.venv/bin/python" -m pytest "$ROOT/tests/e2e" -v -ra
}

down() { kind delete cluster --name "$KIND_CLUSTER"; }

case "${1:-}" in
  up) up ;;
  e2e) e2e ;;
  down) down ;;
  -h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
