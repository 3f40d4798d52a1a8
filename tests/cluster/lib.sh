# shellcheck shell=bash
# Shared helpers for tests/cluster/*.sh. Sourced, not executed.

CLUSTER_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$CLUSTER_SCRIPTS_DIR/versions.env"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Root of the binary cache, outside the repo so `git clean` and fresh clones reuse it.
cache_root() {
  printf '%s\n' "${PLAYBOOK_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/playbook-operator}"
}

# The cache directory is keyed on every input that decides what gets built: the pins
# and the wrapper modules (go.mod + go.sum + tools.go). Change any of them -> new dir.
pin_hash() {
  (cd "$CLUSTER_SCRIPTS_DIR" && cat versions.env gomod/*/go.mod gomod/*/go.sum gomod/*/tools.go) \
    | sha256sum | cut -c1-12
}

cluster_bin_dir() {
  if [[ -n "${PLAYBOOK_OPERATOR_BIN_DIR:-}" ]]; then
    printf '%s\n' "$PLAYBOOK_OPERATOR_BIN_DIR"
  else
    printf '%s/k8s-%s-%s/bin\n' "$(cache_root)" "$KUBERNETES_VERSION" "$(pin_hash)"
  fi
}

# Marker file in every state dir up.sh creates; nothing else is ever deleted.
STATE_MARKER=".playbook-operator-cluster"
export STATE_MARKER

# State of a running cluster (kubeconfigs, certs, logs, pids, etcd data).
cluster_state_dir() {
  printf '%s\n' "${PLAYBOOK_OPERATOR_CLUSTER_DIR:-/tmp/playbook-operator-cluster-${USER:-$(id -un)}}"
}

# ensure_tools CMD:DEBIAN_PACKAGE... : install the packages of missing commands with
# apt-get (as root, e.g. on a brand-new CI machine), running `apt-get update` only
# when something is actually missing.
ensure_tools() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing missing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    die "missing tools; install these packages: ${missing[*]}"
  fi
}
