#!/usr/bin/env bash
# Run a command against a cluster (what `make test-e2e` and `make bench` do):
# - PLAYBOOK_OPERATOR_KUBECONFIG set: against that cluster, nothing started/stopped;
# - else the local cluster: reused if it is already up (and then left up), otherwise
#   built if needed, started, and ALWAYS stopped afterwards, also when the command
#   fails (then state and logs are kept, and the logs' ends printed for CI).
# Exits with the command's exit code. Usage: tests/cluster/with-cluster.sh CMD [ARGS...]
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
(($#)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

if [[ -n "${PLAYBOOK_OPERATOR_KUBECONFIG:-}" ]]; then
  log "running against $PLAYBOOK_OPERATOR_KUBECONFIG: $*"
  exec "$@"
fi

STATE="$(cluster_state_dir)"
started=0
if "$CLUSTER_SCRIPTS_DIR/up.sh" --status; then
  log "reusing the running cluster in $STATE (left running afterwards)"
else
  "$CLUSTER_SCRIPTS_DIR/build.sh" >/dev/null
  "$CLUSTER_SCRIPTS_DIR/up.sh" >/dev/null
  started=1
fi

stop() {
  local rc=$?
  if ((started)); then
    if ((rc != 0)); then
      # Keep the logs of a failed run, and show their ends (CI has no other view).
      for f in "$STATE"/logs/*.log; do
        [[ -f "$f" ]] || continue
        log "---- last 15 lines of $f ----"
        tail -n 15 "$f" >&2 || true
      done
      KEEP=1 "$CLUSTER_SCRIPTS_DIR/down.sh" || true
      log "failed (exit $rc); cluster stopped, state and logs kept in $STATE"
    else
      "$CLUSTER_SCRIPTS_DIR/down.sh" || true
    fi
  fi
  exit "$rc"
}
trap stop EXIT
trap 'exit 130' INT TERM

export PLAYBOOK_OPERATOR_CLUSTER_DIR="$STATE"
export KUBECONFIG="$STATE/kubeconfig"
"$@"
