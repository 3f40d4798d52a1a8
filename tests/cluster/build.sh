#!/usr/bin/env bash
# Build the pinned control-plane binaries (versions.env) from the Go module proxy into
# a cache directory outside the repo, keyed on the pins:
#   ${PLAYBOOK_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/playbook-operator}/k8s-<version>-<pin hash>/bin
# A binary that is already there is skipped, so a warm run takes about a second.
# Prints the bin dir on stdout (last line); progress goes to stderr.
#
# Usage: tests/cluster/build.sh [--print-bin-dir]
#   --print-bin-dir   only print where the binaries are (or would be), build nothing.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

BIN_DIR="$(cluster_bin_dir)"
if [[ "${1:-}" == "--print-bin-dir" ]]; then
  printf '%s\n' "$BIN_DIR"
  exit 0
fi

# Tools build.sh and up.sh need besides go (present on the polyglot image; a new
# Debian machine gets them from apt-get).
ensure_tools openssl:openssl curl:curl sha256sum:coreutils
# tests/page_e2e.rs drives a headless Chromium through chromedriver.
ensure_tools chromium:chromium chromedriver:chromium-driver

command -v go >/dev/null || die "go is not on PATH (Go >= 1.26 is needed; it is not installable from apt here)"

# Version stamping for the Kubernetes binaries (what /version and `kubectl version`
# report); without it they say v0.0.0-master+$Format:%H$ and kubectl fails to parse it.
k8s_major="${KUBERNETES_VERSION#v}" k8s_major="${k8s_major%%.*}"
k8s_minor="${KUBERNETES_VERSION#v*.}" k8s_minor="${k8s_minor%%.*}"
K8S_LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
  K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet etcd kwok helm alertmanager)

missing=()
for b in "${binaries[@]}"; do [[ -x "$BIN_DIR/$b" ]] || missing+=("$b"); done
if ((${#missing[@]} == 0)); then
  log "all ${#binaries[@]} binaries present in $BIN_DIR (pins unchanged)"
  printf '%s\n' "$BIN_DIR"
  exit 0
fi

log "building ${missing[*]} into $BIN_DIR"
log "a cold build of everything takes ~10 minutes on 2 idle cores (15 on a busy machine; ~6 GB of Go module and build cache); later runs reuse it"
mkdir -p "$BIN_DIR"

# -trimpath: reproducible, no local paths in binaries. -mod=readonly: build exactly the
# committed go.mod/go.sum (update-gomod.sh is the only thing that changes them).
# CGO off: none of these need it, and it spares a C toolchain on a new machine.
export CGO_ENABLED=0
common_flags="-trimpath -buildvcs=false"

# Each step ends in `|| return 1`: build_one runs inside `if !`, where bash ignores
# `set -e`.
build_one() {
  local name="$1" tmp="$BIN_DIR/.$1.tmp.$$"
  case "$name" in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl | kubelet)
      (cd "$CLUSTER_SCRIPTS_DIR/gomod/kubernetes" &&
        GOFLAGS="$common_flags -mod=readonly" go build -ldflags "-s -w $K8S_LDFLAGS" \
          -o "$tmp" "k8s.io/kubernetes/cmd/$name") || return 1
      ;;
    etcd)
      (cd "$CLUSTER_SCRIPTS_DIR/gomod/etcd" &&
        GOFLAGS="$common_flags -mod=readonly" go build -ldflags "-s -w" \
          -o "$tmp" go.etcd.io/etcd/server/v3) || return 1
      ;;
    kwok) go_install "$tmp" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "" || return 1 ;;
    helm)
      go_install "$tmp" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
        "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" || return 1
      ;;
    alertmanager)
      go_install "$tmp" "github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION" \
        "-X github.com/prometheus/common/version.Version=${ALERTMANAGER_VERSION#v}" || return 1
      ;;
    *) die "unknown binary $name" ;;
  esac
  # Atomic: a concurrent build or up.sh never sees half a file.
  mv -f "$tmp" "$BIN_DIR/$name" || return 1
}

# `go install pkg@version` builds with that module's own go.mod/go.sum (checked against
# the checksum database through the proxy), i.e. reproducibly for a fixed version.
go_install() {
  local out="$1" what="$2" ldflags="$3" gobin rc=0
  gobin="$(mktemp -d "$BIN_DIR/.gobin.XXXXXX")" || return 1
  GOFLAGS="$common_flags" GOBIN="$gobin" go install -ldflags "-s -w $ldflags" "$what" &&
    mv -f "$gobin"/* "$out" || rc=1
  rm -rf "$gobin"
  return "$rc"
}

total_start=$SECONDS
i=0
for b in "${binaries[@]}"; do
  i=$((i + 1))
  if [[ -x "$BIN_DIR/$b" ]]; then
    log "[$i/${#binaries[@]}] $b: present, skipped"
    continue
  fi
  start=$SECONDS
  log "[$i/${#binaries[@]}] $b: building..."
  if ! build_one "$b"; then
    rm -f "$BIN_DIR/.$b.tmp.$$"
    die "building $b failed (see the go output above)"
  fi
  log "[$i/${#binaries[@]}] $b: built in $((SECONDS - start)) s"
done

# Record what was built with what, for people debugging a cache dir.
{
  cat "$CLUSTER_SCRIPTS_DIR/versions.env"
  echo "# built with $(go version) on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$BIN_DIR/../versions.env"
log "done in $((SECONDS - total_start)) s: $BIN_DIR"
printf '%s\n' "$BIN_DIR"
