#!/usr/bin/env bash
# Restart one control-plane process of the running local cluster with exactly the
# flags and data dir it runs with (read back from /proc/PID/cmdline), as a crashed or
# upgraded one comes back: stop it (SIGNAL, default KILL: a crash; TERM waits for a
# graceful shutdown, SIGKILL after 15 s), keep it down for
# DOWN_SECONDS, start it again (its log appended to), wait until it answers.
# tests/chaos_e2e.rs uses it; the cluster is healthy again when it returns.
#
# Usage: [DOWN_SECONDS=2] [PLAYBOOK_OPERATOR_CLUSTER_DIR=...] tests/cluster/restart.sh apiserver|etcd
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

case "${1:-}" in
  apiserver | kube-apiserver) NAME=kube-apiserver ;;
  etcd) NAME=etcd ;;
  *) die "usage: $0 apiserver|etcd" ;;
esac
STATE="$(cluster_state_dir)"
DOWN="${DOWN_SECONDS:-2}"
TIMEOUT="${UP_TIMEOUT:-60}"
[[ -f "$STATE/env" ]] || die "no cluster in $STATE: start one with tests/cluster/up.sh"
# shellcheck source=/dev/null
. "$STATE/env"

pidfile="$STATE/pids/$NAME.pid"
pid="$(cat "$pidfile" 2>/dev/null || true)"
ours() { # same check as down.sh: the pid still runs our binary
  kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "/$NAME "
}
[[ -n "$pid" ]] && ours "$pid" || die "$NAME is not running (pid file $pidfile); restart the cluster with tests/cluster/up.sh"

# The exact argv, NUL-separated, so flags with spaces survive.
mapfile -d '' argv <"/proc/$pid/cmdline"
((${#argv[@]} > 0)) || die "could not read $NAME's command line"

kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 150); do
  ours "$pid" || break
  sleep 0.1
done
if ours "$pid"; then
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    ours "$pid" || break
    sleep 0.1
  done
fi
log "stopped $NAME (pid $pid); down for ${DOWN} s"
sleep "$DOWN"

echo "=== restart.sh: restarted at $(date -u +%FT%TZ) ===" >>"$STATE/logs/$NAME.log"
setsid "${argv[@]}" >>"$STATE/logs/$NAME.log" 2>&1 </dev/null &
echo $! >"$pidfile"

if [[ "$NAME" == etcd ]]; then
  check() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
else
  check() {
    curl -fsS --max-time 2 --cacert "$STATE/pki/ca.crt" -H "Authorization: Bearer $(cat "$STATE/pki/admin.token")" \
      "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null
  }
fi
start=$SECONDS
until check >/dev/null 2>&1; do
  new="$(cat "$pidfile")"
  kill -0 "$new" 2>/dev/null || die "$NAME exited after the restart (log: $STATE/logs/$NAME.log)"
  ((SECONDS - start < TIMEOUT)) || die "$NAME did not answer within ${TIMEOUT} s of its restart (log: $STATE/logs/$NAME.log)"
  sleep 0.2
done
log "$NAME restarted (pid $(cat "$pidfile")), answering after $((SECONDS - start)) s"
