#!/usr/bin/env bash
# Stop the cluster that up.sh started, by the pids it recorded (never by process
# name: other clusters may run on the same machine), wait for each process to exit,
# then remove the state dir unless KEEP=1.
#
# Usage: [KEEP=1] [PLAYBOOK_OPERATOR_CLUSTER_DIR=...] tests/cluster/down.sh
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

STATE="$(cluster_state_dir)"
# Reverse start order: the fake kubelet and controllers first, etcd last.
COMPONENTS=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

if [[ ! -d "$STATE" ]]; then
  log "nothing to stop: $STATE does not exist"
  exit 0
fi

# True while PID is alive and still runs the binary NAME (a recycled pid is not ours).
ours() {
  local pid="$1" name="$2"
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "/$name "
}

# The real node first: its processes are found by cgroup, and it restores host sysctls.
"$CLUSTER_SCRIPTS_DIR/realnode.sh" down
for name in "${COMPONENTS[@]}"; do
  pidfile="$STATE/pids/$name.pid"
  [[ -f "$pidfile" ]] || continue
  pid="$(cat "$pidfile")"
  if ! ours "$pid" "$name"; then
    rm -f "$pidfile"
    continue
  fi
  kill -TERM "$pid" 2>/dev/null || true
  # Graceful first (etcd and the apiserver shut down in well under a second when
  # idle); SIGKILL after 15 s so a hung process never blocks CI.
  for _ in $(seq 1 150); do
    ours "$pid" "$name" || break
    sleep 0.1
  done
  if ours "$pid" "$name"; then
    log "$name (pid $pid) did not stop after 15 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      ours "$pid" "$name" || break
      sleep 0.1
    done
  fi
  log "stopped $name (pid $pid)"
  rm -f "$pidfile"
done

if [[ "${KEEP:-0}" == 1 ]]; then
  log "KEEP=1: state and logs kept in $STATE"
else
  if [[ -f "$STATE/$STATE_MARKER" ]]; then
    rm -rf "$STATE"
    log "removed $STATE"
  else
    log "not removing $STATE: it was not made by up.sh"
  fi
fi
