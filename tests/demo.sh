#!/usr/bin/env bash
# `make demo`: everything from a fresh machine to a finished playbook run on a real
# API server. Builds the operator and the local control plane (cold: ~10 min, said up
# front), starts the cluster, installs the CRDs, starts the operator, applies the
# seed's Redis playbook with its Runner and Secret, gives each step's fake (kwok) pod
# the log a real step image would print, fires an Alertmanager alert at the operator's
# webhook (examples/alerts/alertmanager-redis-down.json; the example Trigger turns it
# into an Execution), fires it again (a duplicate: nothing new), and prints the
# finished Execution.
# The cluster is left running so you can look around; `make cluster-down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building playbook-operator"
cargo build --release --locked --quiet
OP="${CARGO_TARGET_DIR:-target}/release/playbook-operator"

say "building the local control plane (first time: ~10 minutes; later: instant)"
tests/cluster/build.sh >/dev/null
KUBECTL="$(tests/cluster/build.sh --print-bin-dir)/kubectl"

say "starting it"
tests/cluster/up.sh >/dev/null
export KUBECONFIG="${PLAYBOOK_OPERATOR_CLUSTER_DIR:-/tmp/playbook-operator-cluster-${USER:-$(id -un)}}/kubeconfig"
"$KUBECTL" version 2>/dev/null | sed 's/^/  /'

say "installing the CRDs and the approval admission policies"
# --force-conflicts: the e2e tests install the same objects with a field manager
# of their own; on a cluster they ran on, the demo takes them over.
"$KUBECTL" apply --server-side --force-conflicts -f crds/
# Only CRDs have an Established condition; crds/admission-policies.yaml does not.
"$KUBECTL" wait --for condition=Established --timeout=60s crd/playbooks.stackpulse.io \
  crd/executions.stackpulse.io crd/triggers.stackpulse.io crd/runners.stackpulse.io >/dev/null

say "converting the seed's StackPulse playbook (what changed goes to stderr)"
"$OP" convert examples/stackpulse/redis-incident-enrichment.yaml >/dev/null

say "linting the examples"
"$OP" lint examples/*/*.yaml

say "applying the example playbooks and triggers to namespace demo"
"$KUBECTL" create namespace demo --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" apply -n demo -f examples/playbooks -f examples/triggers
# Retry for a moment: the API server publishes a new CRD's discovery asynchronously.
for _ in $(seq 50); do "$KUBECTL" get stackpulse -n demo >/dev/null 2>&1 && break; sleep 0.2; done
"$KUBECTL" get stackpulse -n demo

say "giving each step's fake pod the log its image would print"
# kwok stands in for the kubelet: it serves these files through the real pods/log
# API, one per step container (containers are named after their step). Lines are in
# the CRI log format kwok reads.
STATE="${PLAYBOOK_OPERATOR_CLUSTER_DIR:-/tmp/playbook-operator-cluster-${USER:-$(id -un)}}"
LOGS="$STATE/demo-logs"
mkdir -p "$LOGS"
step_log() { # step-id, then the lines the step prints
  local id="$1"; shift
  printf '%s\n' "$@" | while IFS= read -r line; do
    printf '%s stdout F %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$line"
  done >"$LOGS/$id.log"
  printf '    - {containers: [%s], logsFile: %s}\n' "$id" "$LOGS/$id.log"
}
{
  cat <<YAML
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata: {name: demo}
spec:
  selector: {matchNamespaces: [demo]}
  logs:
YAML
  step_log get-configmap-data 'reading configmap redis-connection in prod' '<-- END -->' \
    '{"RedisConnectionString": "redis.prod.svc", "RedisPort": 6379}'
  step_log get-redis-info 'connected to redis.prod.svc:6379' '<-- END -->' \
    '{"Server": {"redis_version": "7.2.4", "uptime_in_days": 12}, "Clients": {"connected_clients": 7, "blocked_clients": 0}}'
  step_log display-high-level-redis-info 'posted to Teams channel SRE' '<-- END -->' '{"sent": true}'
} | "$KUBECTL" apply -f -

say "the Runner and the Secret the steps read (the Secret's values never leave it)"
"$KUBECTL" apply -n demo -f - <<'YAML'
apiVersion: stackpulse.io/v1
kind: Runner
metadata: {name: prod}
spec: {}
---
apiVersion: v1
kind: Secret
metadata: {name: playbook-secrets}
stringData: {Redis_Secret: "demo:s3cret", Teams_Key: "https://teams.example/hook/demo"}
YAML

say "starting the operator (logs: $STATE/logs/operator.log)"
# The webhook's bearer token: in a cluster, a file mounted from a Secret.
TOKEN_FILE="$STATE/webhook-token"
[[ -s "$TOKEN_FILE" ]] || { umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$TOKEN_FILE"; }
TOKEN="$(cat "$TOKEN_FILE")"
# Any free port: the log line "serving HTTP addr=..." says which.
: >"$STATE/logs/operator.log"
"$OP" run --namespace demo --http-addr 127.0.0.1:0 --webhook-token-file "$TOKEN_FILE" \
  >"$STATE/logs/operator.log" 2>&1 &
OPERATOR=$!
trap 'kill "$OPERATOR" 2>/dev/null; wait "$OPERATOR" 2>/dev/null' EXIT
ADDR=""
for _ in $(seq 100); do
  ADDR="$(grep -o 'serving HTTP addr=[0-9.:]*' "$STATE/logs/operator.log" | head -1 | cut -d= -f2)" || true
  [[ -n "$ADDR" ]] && break
  sleep 0.1
done
[[ -n "$ADDR" ]] || { cat "$STATE/logs/operator.log" >&2; echo "the operator did not start" >&2; exit 1; }
echo "  serving on http://$ADDR"

say "firing an alert: Alertmanager's webhook with RedisDown on redis.prod.svc"
TRIGGER=redis-alerts-redis-down
"$KUBECTL" delete execution -n demo -l "stackpulse.io/trigger=$TRIGGER" --ignore-not-found >/dev/null
fire() {
  curl -sS --retry 10 --retry-all-errors --retry-delay 1 -X POST \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data-binary @examples/alerts/alertmanager-redis-down.json \
    -w '  HTTP %{http_code}\n' "http://$ADDR/webhooks/alertmanager"
}
fire
say "the same notification again (Alertmanager delivers at least once): a duplicate"
fire
NAME="$("$KUBECTL" get pbx -n demo -l "stackpulse.io/trigger=$TRIGGER" -o jsonpath='{.items[0].metadata.name}')"
[[ -n "$NAME" ]] || { echo "the alert started no Execution" >&2; exit 1; }
phase=""
for _ in $(seq 300); do
  phase="$("$KUBECTL" get pbx -n demo "$NAME" -o jsonpath='{.status.phase}')"
  [[ "$phase" == Succeeded || "$phase" == Failed || "$phase" == Cancelled ]] && break
  sleep 0.2
done
"$KUBECTL" get pbx -n demo
"$KUBECTL" get jobs -n demo
# Trigger counts are written every 2 s at most (coalesced), so wait a moment.
for _ in $(seq 50); do
  [[ "$("$KUBECTL" get trigger -n demo "$TRIGGER" -o jsonpath='{.status.matched}')" =~ ^[1-9] ]] && break
  sleep 0.2
done
"$KUBECTL" get trigger -n demo

say "the finished Execution"
"$KUBECTL" get pbx -n demo "$NAME" -o yaml

say "done"
cat <<TXT
The cluster keeps running:
  export KUBECONFIG=$KUBECONFIG
  $KUBECTL get stackpulse -n demo
  make cluster-down      # stop it
TXT
[[ "$phase" == Succeeded ]] || { echo "the demo Execution ended $phase" >&2; exit 1; }
