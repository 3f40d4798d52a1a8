#!/usr/bin/env bash
# Start a real local control plane on loopback: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok with one fake node, and one real
# kubelet node in a network namespace of its own (realnode.sh).
#
# Usage: tests/cluster/up.sh            start (or report the already-running cluster)
#        tests/cluster/up.sh --status   exit 0 iff the cluster in the state dir answers
#
# Environment (all optional):
#   PLAYBOOK_OPERATOR_CLUSTER_DIR  state dir (default /tmp/playbook-operator-cluster-$USER):
#                                  kubeconfigs, pki/, logs/, pids/, etcd data.
#   PLAYBOOK_OPERATOR_CACHE        binary cache root (see build.sh).
#   ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT KWOK_PORT
#                                  fixed ports; default: random free ports, so two
#                                  clusters (with two state dirs) can run side by side.
#   KCM_QPS KCM_BURST KCM_CONCURRENT_JOB_SYNCS
#                                  client limits of kube-controller-manager and
#                                  kube-scheduler (default 1000 / 2000 / 20; upstream
#                                  defaults are 20 / 30 / 5 and make Jobs ~7x slower).
#   ETCD_UNSAFE_NO_FSYNC=1         skip fsync in etcd (faster on slow disks; default off).
#   UP_TIMEOUT                     seconds to wait for each component (default 60).
#   PLAYBOOK_OPERATOR_REAL_NODE=0  start no real node (see realnode.sh).
#
# Prints `export KUBECONFIG=...` as its last line on stdout.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

STATE="$(cluster_state_dir)"
BIN="$(cluster_bin_dir)"
TIMEOUT="${UP_TIMEOUT:-60}"
KCM_QPS="${KCM_QPS:-1000}"
KCM_BURST="${KCM_BURST:-2000}"
KCM_CONCURRENT_JOB_SYNCS="${KCM_CONCURRENT_JOB_SYNCS:-20}"
NODE_NAME="kwok-node-0"
# Start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# ---------------------------------------------------------------------------
# helpers

pid_of() { cat "$STATE/pids/$1.pid" 2>/dev/null || true; }

# A pid file is trusted only while that pid still runs our binary (pids get reused).
alive() {
  local pid
  pid="$(pid_of "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "/$1 "
}

# In a subshell: sourcing env must not leak the old ports into this start.
healthy() (
  [[ -f "$STATE/env" ]] || return 1
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  # shellcheck source=/dev/null
  . "$STATE/env"
  curl -fsS --max-time 5 --cacert "$STATE/pki/ca.crt" -H "Authorization: Bearer $(cat "$STATE/pki/admin.token")" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
)

print_tail() {
  local f="$STATE/logs/$1.log"
  log "---- last 40 lines of $f ----"
  tail -n 40 "$f" >&2 2>/dev/null || true
  log "---- end of $f ----"
}

# wait_for COMPONENT WHAT CMD... : poll CMD until it succeeds; fail fast if the
# component died, fail with its log tail after $TIMEOUT seconds.
wait_for() {
  local comp="$1" what="$2" start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! alive "$comp"; then
      print_tail "$comp"
      die "$comp exited while waiting for $what (log: $STATE/logs/$comp.log)"
    fi
    if ((SECONDS - start >= TIMEOUT)); then
      print_tail "$comp"
      die "timed out after ${TIMEOUT}s waiting for $what (log: $STATE/logs/$comp.log)"
    fi
    sleep 0.2
  done
  log "$what: ok after $((SECONDS - start)) s"
}

# A random port in 20000-32767 (below Linux's ephemeral range, so outgoing
# connections do not take it) that nothing listens on and we did not pick yet.
PICKED=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12768))
    [[ "$PICKED" == *" $p "* ]] && continue
    # Connection refused <=> nobody listens on 127.0.0.1:p.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      PICKED+="$p "
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# start NAME ARGS... : run the binary detached (own session, so a Ctrl-C in the
# terminal or make's process group does not kill the cluster), log to logs/NAME.log.
start() {
  local name="$1"
  shift
  log "starting $name"
  setsid "$BIN/$name" "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
  # Until the forked shell has exec'd the binary, /proc/PID/cmdline is still bash's
  # and alive() would call it dead: wait for the exec (milliseconds).
  for _ in $(seq 1 100); do
    alive "$name" && return 0
    kill -0 "$!" 2>/dev/null || break
    sleep 0.02
  done
  alive "$name" || { print_tail "$name"; die "$name did not start"; }
}

kubeconfig() { # kubeconfig FILE USER TOKEN
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: playbook-operator-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$STATE/pki/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@playbook-operator-test
  context:
    cluster: playbook-operator-test
    user: $2
    namespace: default
current-context: $2@playbook-operator-test
EOF
  chmod 600 "$1"
}

# ---------------------------------------------------------------------------
# already running?

if [[ "${1:-}" == "--status" ]]; then
  healthy
  exit $?
fi

if healthy; then
  log "cluster already running (state: $STATE)"
  echo "export KUBECONFIG=$STATE/kubeconfig"
  exit 0
fi
for c in "${COMPONENTS[@]}"; do
  if alive "$c"; then
    die "$c from an earlier start is still running but the cluster is not healthy; run tests/cluster/down.sh first (state: $STATE)"
  fi
done

for b in "${COMPONENTS[@]}" kubectl; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing: run tests/cluster/build.sh (make cluster-build) first"
done
ensure_tools openssl:openssl curl:curl

# Stale state from a crashed run: start clean. Only ever delete a directory that
# up.sh made (marker file) or an empty one: the path comes from the environment.
if [[ -d "$STATE" && -n "$(ls -A "$STATE")" ]]; then
  [[ -f "$STATE/$STATE_MARKER" ]] || die "$STATE exists and was not made by up.sh; refusing to wipe it (set PLAYBOOK_OPERATOR_CLUSTER_DIR to another dir)"
  # A crashed real node leaves processes, a network namespace and host sysctls.
  "$CLUSTER_SCRIPTS_DIR/realnode.sh" down
  rm -rf "$STATE"
fi
mkdir -p "$STATE"/{pki,logs,pids,etcd,kwok}
chmod 700 "$STATE" "$STATE/etcd"
touch "$STATE/$STATE_MARKER"
t0=$SECONDS

# If anything below fails, stop what we started (state and logs stay for a look).
cleanup_on_error() {
  local rc=$?
  if ((rc != 0)); then
    log "start failed; stopping what was started (logs kept in $STATE/logs)"
    KEEP=1 "$CLUSTER_SCRIPTS_DIR/down.sh" >&2 || true
  fi
}
trap cleanup_on_error EXIT

# ---------------------------------------------------------------------------
# ports

ETCD_PORT="${ETCD_PORT:-$(free_port)}"
PICKED+="$ETCD_PORT "
ETCD_PEER_PORT="${ETCD_PEER_PORT:-$(free_port)}"
PICKED+="$ETCD_PEER_PORT "
APISERVER_PORT="${APISERVER_PORT:-$(free_port)}"
PICKED+="$APISERVER_PORT "
KCM_PORT="${KCM_PORT:-$(free_port)}"
PICKED+="$KCM_PORT "
SCHEDULER_PORT="${SCHEDULER_PORT:-$(free_port)}"
PICKED+="$SCHEDULER_PORT "
KWOK_PORT="${KWOK_PORT:-$(free_port)}"
cat >"$STATE/env" <<EOF
# Written by tests/cluster/up.sh; read by down.sh and tests.
BIN_DIR=$BIN
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
KCM_PORT=$KCM_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
KWOK_PORT=$KWOK_PORT
KCM_QPS=$KCM_QPS
KCM_BURST=$KCM_BURST
KCM_CONCURRENT_JOB_SYNCS=$KCM_CONCURRENT_JOB_SYNCS
KUBECONFIG=$STATE/kubeconfig
AUDIT_LOG=$STATE/logs/audit.log
EOF

# ---------------------------------------------------------------------------
# PKI: a private CA, one serving cert for 127.0.0.1 (apiserver and kwok's kubelet
# API), a service-account signing key pair, and bearer tokens.

pki="$STATE/pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=playbook-operator-test-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$pki/serving.key" -out "$pki/serving.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' >"$pki/serving.ext"
openssl x509 -req -in "$pki/serving.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
  -days 365 -extfile "$pki/serving.ext" -out "$pki/serving.crt" 2>/dev/null
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

# Static token authentication: token,user,uid,"group1,group2".
# admin and kwok are cluster admins; the controller manager and scheduler use their
# own identities, which the apiserver's bootstrap RBAC knows; alice and bob are
# ordinary users with no groups and no RBAC: Forbidden until a test grants something;
# carol is one too, in group `sre` (approvals by group: tests/approval_e2e.rs).
: >"$pki/tokens.csv"
for u in admin kwok system:kube-controller-manager system:kube-scheduler alice bob carol system:node:real-node-0; do
  tok="$(openssl rand -hex 24)"
  case "$u" in
    admin | kwok) groups='"system:masters"' ;;
    # The real node's kubelet (realnode.sh). The apiserver runs RBAC only (no Node
    # authorizer), under which system:nodes alone may do nothing.
    system:node:*) groups='"system:nodes,system:masters"' ;;
    carol) groups='"sre"' ;;
    *) groups='' ;;
  esac
  # No groups column when there are none: an empty one is a group named "".
  echo "$tok,$u,uid-${u//:/-}${groups:+,$groups}" >>"$pki/tokens.csv"
  file="${u#system:}"
  echo "$tok" >"$pki/$file.token"
done
chmod 600 "$pki"/*

kubeconfig "$STATE/kubeconfig" admin "$(cat "$pki/admin.token")"
kubeconfig "$STATE/kubeconfig-alice" alice "$(cat "$pki/alice.token")"
kubeconfig "$STATE/kubeconfig-bob" bob "$(cat "$pki/bob.token")"
kubeconfig "$STATE/kubeconfig-carol" carol "$(cat "$pki/carol.token")"
kubeconfig "$STATE/kwok.kubeconfig" kwok "$(cat "$pki/kwok.token")"
kubeconfig "$STATE/kube-controller-manager.kubeconfig" system:kube-controller-manager "$(cat "$pki/kube-controller-manager.token")"
kubeconfig "$STATE/kube-scheduler.kubeconfig" system:kube-scheduler "$(cat "$pki/kube-scheduler.token")"
export KUBECONFIG="$STATE/kubeconfig"
kubectl() { "$BIN/kubectl" "$@"; }

# ---------------------------------------------------------------------------
# etcd

etcd_url="http://127.0.0.1:$ETCD_PORT"
peer_url="http://127.0.0.1:$ETCD_PEER_PORT"
etcd_args=(
  --name=playbook-operator --data-dir="$STATE/etcd"
  --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url"
  --listen-peer-urls="$peer_url" --initial-advertise-peer-urls="$peer_url"
  --initial-cluster="playbook-operator=$peer_url"
  --log-level=warn
)
[[ "${ETCD_UNSAFE_NO_FSYNC:-0}" == 1 ]] && etcd_args+=(--unsafe-no-fsync)
start etcd "${etcd_args[@]}"
wait_for etcd "etcd health" bash -c "curl -fsS --max-time 2 '$etcd_url/health' | grep -q '\"health\":\"true\"'"

# ---------------------------------------------------------------------------
# kube-apiserver

# Audit log of what service accounts outside kube-system do (metadata only): the
# chart's e2e test checks that the operator's ServiceAccount used every right the
# chart grants and was denied nothing. Users and the control plane's own controllers
# are left out, so the log stays small.
cat >"$STATE/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  # Patches of Executions (approvals) by anyone, with who impersonated whom: a Slack
  # approval must be written as the person (tests/notify_e2e.rs).
  - level: Metadata
    verbs: [patch]
    resources: [{group: stackpulse.io, resources: [executions]}]
  - level: None
EOF

start kube-apiserver \
  --etcd-servers="$etcd_url" \
  --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
  --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
  --tls-cert-file="$pki/serving.crt" --tls-private-key-file="$pki/serving.key" \
  --client-ca-file="$pki/ca.crt" \
  --requestheader-client-ca-file="$pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --token-auth-file="$pki/tokens.csv" \
  --authorization-mode=RBAC \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range=10.96.0.0/16 \
  --allow-privileged=true \
  --kubelet-preferred-address-types=InternalIP \
  --cert-dir="$pki" \
  --profiling=false \
  --audit-policy-file="$STATE/audit-policy.yaml" \
  --audit-log-path="$STATE/logs/audit.log" --audit-log-maxsize=200 --audit-log-maxbackup=1
# The --requestheader-* flags are kubeadm's front-proxy settings (no such client cert
# is issued here); without them kube-controller-manager and kube-scheduler log
# "missing content for CA bundle" errors while they start.
# kwok's "kubelet" (pods/log etc.) is reached at the node's InternalIP (127.0.0.1);
# --kubelet-preferred-address-types avoids trying to resolve the node name.
wait_for kube-apiserver "kube-apiserver /readyz" \
  curl -fsS --max-time 2 --cacert "$pki/ca.crt" -H "Authorization: Bearer $(cat "$pki/admin.token")" \
  "https://127.0.0.1:$APISERVER_PORT/readyz"

# kwok's ClusterLogs/Logs CRDs (pod log fixtures for tests) and the fake node.
kubectl apply -f "$CLUSTER_SCRIPTS_DIR/kwok/crds/" >/dev/null
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
spec: {}
EOF
wait_for kube-apiserver "kwok CRDs established" \
  kubectl wait --for=condition=Established --timeout=5s crd/clusterlogs.kwok.x-k8s.io crd/logs.kwok.x-k8s.io

# ---------------------------------------------------------------------------
# kube-controller-manager and kube-scheduler

log "kube-controller-manager/kube-scheduler client limits: qps=$KCM_QPS burst=$KCM_BURST concurrent-job-syncs=$KCM_CONCURRENT_JOB_SYNCS (env KCM_QPS/KCM_BURST/KCM_CONCURRENT_JOB_SYNCS)"
start kube-controller-manager \
  --kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  --use-service-account-credentials=true \
  --leader-elect=false \
  --controllers='*' \
  --kube-api-qps="$KCM_QPS" --kube-api-burst="$KCM_BURST" \
  --concurrent-job-syncs="$KCM_CONCURRENT_JOB_SYNCS" \
  --cert-dir="$STATE/kcm-certs"

cat >"$STATE/kube-scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $STATE/kube-scheduler.kubeconfig
  qps: $KCM_QPS
  burst: $KCM_BURST
leaderElection:
  leaderElect: false
EOF
start kube-scheduler \
  --config="$STATE/kube-scheduler.yaml" \
  --authentication-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
  --cert-dir="$STATE/scheduler-certs"

# ---------------------------------------------------------------------------
# kwok: the fake kubelet. Stages (how pods run and end) come from kwok/stages.yaml;
# pod logs come from ClusterLogs/Logs objects in the cluster (--enable-crds), so each
# test can point its own namespace's containers at its own fixture files.

start kwok \
  --kubeconfig="$STATE/kwok.kubeconfig" \
  --config="$CLUSTER_SCRIPTS_DIR/kwok/stages.yaml" \
  --enable-crds=ClusterLogs,Logs \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-ip=127.0.0.1 --node-port="$KWOK_PORT" \
  --server-address="127.0.0.1:$KWOK_PORT" \
  --tls-cert-file="$pki/serving.crt" --tls-private-key-file="$pki/serving.key" \
  --node-lease-duration-seconds=40

# ---------------------------------------------------------------------------
# ready when: controllers and scheduler answer, the node is Ready, and the default
# ServiceAccount exists (the ServiceAccount admission plugin rejects pods before that).

wait_for kube-controller-manager "kube-controller-manager /healthz" \
  curl -fsS --max-time 2 -k "https://127.0.0.1:$KCM_PORT/healthz"
wait_for kube-scheduler "kube-scheduler /healthz" \
  curl -fsS --max-time 2 -k "https://127.0.0.1:$SCHEDULER_PORT/healthz"
wait_for kwok "node $NODE_NAME Ready" \
  kubectl wait --for=condition=Ready --timeout=5s "node/$NODE_NAME"
wait_for kube-controller-manager "ServiceAccount default/default" \
  kubectl get serviceaccount default --namespace default

# The real kubelet node (realnode.sh): never fails the start; if it cannot run here,
# <state>/realnode/unavailable says why and the tests that need it fail with that.
"$CLUSTER_SCRIPTS_DIR/realnode.sh" up

trap - EXIT
log "cluster up in $((SECONDS - t0)) s: https://127.0.0.1:$APISERVER_PORT, state $STATE, logs $STATE/logs/"
log "users: admin ($STATE/kubeconfig), alice ($STATE/kubeconfig-alice), bob ($STATE/kubeconfig-bob), carol ($STATE/kubeconfig-carol, group sre)"
echo "export KUBECONFIG=$STATE/kubeconfig"
