#!/usr/bin/env bash
# Installs every program tier0's local stack and tests need, idempotently.
#   Debian packages: redis-server redis-sentinel mosquitto rabbitmq-server prometheus wrk chromium (apt-get)
#   Go-built tools (Go module proxy) into $TOOLS_BIN: kube-apiserver, etcd, helm, kind, toxiproxy-server
# A second run rebuilds nothing: each binary is kept under the ignored .tools/ folder.
set -eEuo pipefail
[[ "${DEBUG:-false}" == "true" ]] && set -x

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/versions.env
source "$ROOT/hack/versions.env"
TOOLS_DIR=${TOOLS_DIR:-$ROOT/.tools}
TOOLS_BIN=$TOOLS_DIR/bin

usage() {
  cat <<USAGE
Usage: hack/install-tools.sh [--debian] [--go] [--all] [--only NAME] [-h]

Installs what tier0 needs. Without flags: --all.
  --debian     apt-get install: ${DEBIAN_PACKAGES}
  --go         build kube-apiserver ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION},
               helm ${HELM_VERSION}, kind ${KIND_VERSION}, dashcheck (hack/dashcheck),
               toxiproxy-server ${TOXIPROXY_VERSION} into \$TOOLS_BIN
  --only NAME  build only one Go tool (kube-apiserver | etcd | helm | kind | dashcheck | toxiproxy-server)
  -h, --help   this text

Environment:
  TOOLS_DIR    where binaries are kept (default: .tools; now ${TOOLS_DIR})
  DEBUG=true   trace every command
USAGE
}

log() { printf '\033[1m[install-tools]\033[0m %s\n' "$*" >&2; }

install_debian() {
  local missing=()
  for p in $DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then log "Debian packages present"; return; fi
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  # The packages' own services are not wanted: tier0 starts its own instances on its own ports.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for svc in redis-server redis-sentinel mosquitto rabbitmq-server prometheus; do
    $sudo service "$svc" stop >/dev/null 2>&1 || true
  done
  # Debian's rabbitmq-server starts epmd, which later fights our node over nothing; leave it.
}

have_version() { # name wanted-version
  [[ -x "$TOOLS_BIN/$1" && -f "$TOOLS_BIN/.$1.version" && "$(cat "$TOOLS_BIN/.$1.version")" == "$2" ]]
}

mark() { echo "$2" >"$TOOLS_BIN/.$1.version"; }

# Builds a main package of a module whose go.mod uses replace directives (so `go install pkg@v`
# refuses it): a throwaway module requires it and repeats the replaces against published versions.
build_in_scratch_module() { # name module version pkg replaces-file ldflags
  local name=$1 module=$2 version=$3 pkg=$4 replaces=$5 ldflags=$6
  local dir; dir=$(mktemp -d)
  (
    cd "$dir"
    go mod init "tier0.local/build-$name" >/dev/null 2>&1
    go mod edit -require="$module@$version"
    [[ -s "$replaces" ]] && while read -r from to; do go mod edit -replace="$from=$to"; done <"$replaces"
    log "$name: resolving modules"
    go mod tidy -e >/dev/null 2>&1 || true
    log "$name: compiling $pkg (progress: one line per 30 s)"
    ( while sleep 30; do log "$name: still compiling..."; done ) &
    trap 'kill $! 2>/dev/null || true' EXIT
    go get "$pkg@$version" >/dev/null 2>&1 || true
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$TOOLS_BIN/$name" "$pkg"
  )
  rm -rf "$dir"
}

build_kube_apiserver() {
  have_version kube-apiserver "$KUBERNETES_VERSION" && { log "kube-apiserver $KUBERNETES_VERSION present"; return; }
  local start=$SECONDS staging=${KUBERNETES_VERSION/v1./v0.}
  local replaces; replaces=$(mktemp)
  log "kube-apiserver $KUBERNETES_VERSION: reading k8s.io/kubernetes go.mod"
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  # k8s.io/kubernetes replaces each staging module with ./staging/src/k8s.io/X; use the published X.
  grep -oE 'k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$gomod" | awk -v v="$staging" '{print $1, $1"@"v}' >"$replaces"
  local pkgv="k8s.io/component-base/version"
  build_in_scratch_module kube-apiserver k8s.io/kubernetes "$KUBERNETES_VERSION" k8s.io/kubernetes/cmd/kube-apiserver "$replaces" \
    "-s -w -X $pkgv.gitVersion=$KUBERNETES_VERSION -X $pkgv.gitMajor=1 -X $pkgv.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION") -X $pkgv.gitTreeState=clean"
  rm -f "$replaces"
  mark kube-apiserver "$KUBERNETES_VERSION"
  log "kube-apiserver built in $((SECONDS - start)) s"
}

build_etcd() {
  have_version etcd "$ETCD_VERSION" && { log "etcd $ETCD_VERSION present"; return; }
  local start=$SECONDS replaces; replaces=$(mktemp)
  # etcd's server module replaces its sibling modules with ../api etc.; pin them to the release.
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3; do
    echo "go.etcd.io/etcd/$m go.etcd.io/etcd/$m@$ETCD_VERSION" >>"$replaces"
  done
  build_in_scratch_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$replaces" "-s -w"
  rm -f "$replaces"
  mark etcd "$ETCD_VERSION"
  log "etcd built in $((SECONDS - start)) s"
}

go_install() { # name pkg version
  have_version "$1" "$3" && { log "$1 $3 present"; return; }
  local start=$SECONDS
  log "$1 $3: go install $2"
  GOBIN="$TOOLS_BIN" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$2@$3"
  mark "$1" "$3"
  log "$1 built in $((SECONDS - start)) s"
}

# The dashboards' strict schema check (hack/dashcheck, grafana-foundation-sdk pinned in its go.mod/go.sum).
build_dashcheck() {
  local want
  want=$(cat "$ROOT/hack/dashcheck/go.sum" "$ROOT/hack/dashcheck/main.go" | sha256sum | cut -c1-12)
  have_version dashcheck "$want" && { log "dashcheck $want present"; return; }
  local start=$SECONDS
  log "dashcheck $want: go build hack/dashcheck"
  (cd "$ROOT/hack/dashcheck" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$TOOLS_BIN/dashcheck" .)
  mark dashcheck "$want"
  log "dashcheck built in $((SECONDS - start)) s"
}

# toxiproxy's main package is cmd/server, so `go install` would name the binary `server`.
build_toxiproxy() {
  have_version toxiproxy-server "$TOXIPROXY_VERSION" && { log "toxiproxy-server $TOXIPROXY_VERSION present"; return; }
  local start=$SECONDS gobin; gobin=$(mktemp -d)
  log "toxiproxy-server $TOXIPROXY_VERSION: go install github.com/Shopify/toxiproxy/v2/cmd/server"
  GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "$gobin/server" "$TOOLS_BIN/toxiproxy-server"
  rm -rf "$gobin"
  mark toxiproxy-server "$TOXIPROXY_VERSION"
  log "toxiproxy-server built in $((SECONDS - start)) s"
}

install_go() {
  command -v go >/dev/null || { echo "go is required to build kube-apiserver/etcd/helm/kind: install Go >= 1.24 (https://go.dev/dl) or 'apt-get install golang'" >&2; exit 1; }
  mkdir -p "$TOOLS_BIN"
  case "${ONLY:-}" in
    "") build_etcd; build_kube_apiserver; go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"; go_install kind sigs.k8s.io/kind "$KIND_VERSION"; build_dashcheck; build_toxiproxy ;;
    dashcheck) build_dashcheck ;;
    toxiproxy-server) build_toxiproxy ;;
    kube-apiserver) build_kube_apiserver ;;
    etcd) build_etcd ;;
    helm) go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
    kind) go_install kind sigs.k8s.io/kind "$KIND_VERSION" ;;
    *) echo "unknown tool: $ONLY" >&2; usage; exit 2 ;;
  esac
}

main() {
  local debian=false gotools=false
  while [[ $# -gt 0 ]]; do
    case $1 in
      --debian) debian=true ;;
      --go) gotools=true ;;
      --all) debian=true; gotools=true ;;
      --only) gotools=true; ONLY=$2; shift ;;
      -h|--help) usage; exit 0 ;;
      *) echo "unknown flag: $1" >&2; usage; exit 2 ;;
    esac
    shift
  done
  if ! $debian && ! $gotools; then debian=true; gotools=true; fi
  $debian && install_debian
  $gotools && install_go
  return 0
}
main "$@"
