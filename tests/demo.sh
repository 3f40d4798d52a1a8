#!/usr/bin/env bash
# `make demo`: everything from a fresh machine to a playbook on a real API server.
# Builds the operator and the local control plane (cold: ~10 min, said up front),
# starts the cluster, installs the CRDs, applies the example Runner and playbooks,
# creates an Execution, and prints the Jobs its first steps would create.
#
# What it does not do yet, and says so: run the Execution. The controller
# (`playbook-operator run`) is the next piece of work; this demo never pretends.
# The cluster is left running so you can look around; `make cluster-down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building playbook-operator"
cargo build --release --locked --quiet
OP=target/release/playbook-operator

say "building the local control plane (first time: ~10 minutes; later: instant)"
tests/cluster/build.sh >/dev/null
KUBECTL="$(tests/cluster/build.sh --print-bin-dir)/kubectl"

say "starting it"
tests/cluster/up.sh >/dev/null
export KUBECONFIG="${PLAYBOOK_OPERATOR_CLUSTER_DIR:-/tmp/playbook-operator-cluster-${USER:-$(id -un)}}/kubeconfig"
"$KUBECTL" version 2>/dev/null | sed 's/^/  /'

say "installing the CRDs"
"$KUBECTL" apply --server-side -f crds/
"$KUBECTL" wait --for condition=Established --timeout=60s -f crds/ >/dev/null

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

say "creating an Execution of redis-incident-enrichment"
"$KUBECTL" apply -n demo -f - <<'YAML'
apiVersion: stackpulse.io/v1
kind: Execution
metadata: {name: redis-demo}
spec:
  playbookRef: {name: redis-incident-enrichment}
  params: {RedisConnectionString: redis.prod.svc, RedisPort: "6379"}
YAML
"$KUBECTL" get pbx -n demo

say "the Jobs its first steps would create (secrets stay references)"
"$OP" render examples/playbooks/redis-incident-enrichment.yaml --namespace demo \
  -p RedisConnectionString=redis.prod.svc -p RedisPort=6379

say "not yet: running it"
cat <<TXT
The controller that runs Executions (playbook-operator run) is the next piece of
work, so redis-demo stays without a phase. The cluster keeps running:
  export KUBECONFIG=$KUBECONFIG
  $KUBECTL get stackpulse -n demo
  make cluster-down      # stop it
TXT
