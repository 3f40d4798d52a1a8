#!/usr/bin/env bash
# The real node of the local cluster: containerd + a real kubelet, registered as node
# `real-node-0` beside kwok's fake node, tainted so that only pods that tolerate
# `stackpulse.io/real-node` land on it. See README.md "The real node".
#
# Usage: tests/cluster/realnode.sh up     (called by up.sh once the control plane is up)
#        tests/cluster/realnode.sh down   (called by down.sh, and by up.sh on stale state)
#
# `up` never fails the cluster: if the node cannot start on this machine it writes the
# reason to <state>/realnode/unavailable, prints it once, and the tests that need the
# node fail with that reason. PLAYBOOK_OPERATOR_REAL_NODE=0 skips the node (the marker
# then says so).
#
# Isolation (nothing of the node touches the host's network or leaks mounts):
# - a network namespace of its own (`pbo-<id>`) joined to the host by a veth pair with
#   a /30 the script picks in 10.200.0.0/16; the kubelet serves on the namespace end,
#   and the API server reaches it over the veth;
# - a private mount namespace with fresh tmpfs on /run, /var/lib and /var/log, so the
#   runtime's fixed paths (/run/containerd, /run/netns, /var/lib/cni,
#   /var/log/containers) and every mount it makes vanish with its processes;
# - every process of the node (socat, containerd, shims, kubelet, containers) runs in
#   the cgroup `pbo-<id>` (also the kubelet's cgroupRoot): `down` kills what is in it;
# - the sysctls the kubelet sets (global, not per namespace) are recorded before the
#   first kubelet on the machine starts and restored when the last one stops.
# <id> is a hash of the state dir, so `down` finds the debris of a crashed run by name.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

STATE="$(cluster_state_dir)"
RN="$STATE/realnode"
REAL_NODE_NAME="real-node-0"
# Taint and label key of the node (value "true"); tests/common/realnode.rs uses it.
REAL_NODE_KEY="stackpulse.io/real-node"
ID="$(printf '%s' "$STATE" | sha256sum | cut -c1-6)"
NETNS="pbo-$ID"
VETH_HOST="pbo${ID}h"
VETH_NODE="pbo${ID}n"
UNDO="$RN/undo"
# Machine-wide: the sysctl values found before the first real node started, and one
# file per real node that runs (sysctls are global, clusters run side by side).
MACHINE_DIR="/run/playbook-operator-real-nodes"
# What the kubelet sets at start (pkg/kubelet/cm/container_manager_linux.go).
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
TIMEOUT="${UP_TIMEOUT:-60}"

# undo_get FILE KEY: the values of KEY= lines of an undo record, one a line.
undo_get() { sed -n "s/^$2=//p" "$1" 2>/dev/null || true; }

# hierarchies CGPATH: that cgroup's directory in every hierarchy that has it.
hierarchies() {
  local d
  [[ -n "$1" ]] || return 0
  for d in /sys/fs/cgroup/*/"${1#/}" /sys/fs/cgroup/"${1#/}"; do
    if [[ -f "$d/cgroup.procs" ]]; then printf '%s\n' "$d"; fi
  done
  return 0
}

# pids_in CGPATH: every pid in that cgroup tree, in any hierarchy.
pids_in() {
  local d
  hierarchies "$1" | while read -r d; do
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}

# ---------------------------------------------------------------------------
# down: stop everything of this state dir's node and undo what up did. Safe to run
# any number of times, with or without state, also after a crash.

restore_sysctls() {
  local f
  for f in "$MACHINE_DIR"/node-*; do
    [[ -f "$f" ]] || continue
    # Another cluster's node still runs: it may rely on the kubelet's values.
    if [[ -n "$(pids_in "$(undo_get "$(cat "$f")" cgroup)")" ]]; then
      log "the real node of $(cat "$f") still runs: host sysctls stay until it stops"
      return 0
    fi
    rm -f "$f"
  done
  [[ -f "$MACHINE_DIR/sysctl.orig" ]] || return 0
  local key value
  while IFS='=' read -r key value; do
    [[ -n "$key" ]] || continue
    sysctl -qw "$key=$value" >/dev/null 2>&1 || log "could not restore sysctl $key=$value"
  done <"$MACHINE_DIR/sysctl.orig"
  rm -f "$MACHINE_DIR/sysctl.orig"
  # Directories that were missing before the first node: `ip netns add` makes
  # /run/netns (a mount point), util-linux makes /run/mount.
  local made
  [[ -f "$MACHINE_DIR/made-dirs" ]] || : >"$MACHINE_DIR/made-dirs"
  while read -r made; do
    [[ "$made" == /run/netns && -n "$(ip netns list 2>/dev/null)" ]] && continue
    while mountpoint -q "$made"; do umount "$made" || break; done
    rmdir "$made" 2>/dev/null || true
  done <"$MACHINE_DIR/made-dirs"
  rm -f "$MACHINE_DIR/made-dirs"
  rmdir "$MACHINE_DIR" 2>/dev/null || true
  log "restored host sysctls"
}

down() {
  local i pids d cg
  cg="$(undo_get "$UNDO" cgroup)"
  # SIGKILL: the whole node goes away with the cluster; nothing is to be saved, and
  # containers get no chance to outlive their shims.
  for i in $(seq 1 50); do
    pids="$(pids_in "$cg")"
    [[ -z "$pids" ]] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  [[ -z "$(pids_in "$cg")" ]] || log "some processes of cgroup $cg did not stop: $(pids_in "$cg" | tr '\n' ' ')"
  # Deepest cgroups first, then the parents up.sh had to create (newest first).
  hierarchies "$cg" | while read -r d; do
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    if [[ -d "$d" ]]; then log "could not remove cgroup $d"; fi
  done
  # The kernel frees the cgroups of killed processes asynchronously: a parent may be
  # busy for a moment.
  undo_get "$UNDO" created | tac | while read -r d; do
    for i in $(seq 1 20); do
      rmdir "$d" 2>/dev/null || [[ -d "$d" ]] || break
      [[ -d "$d" ]] || break
      sleep 0.1
    done
  done
  # This also deletes route_kubernetes_service's DNAT rule, which lives in it.
  if [[ -e "/run/netns/$NETNS" ]]; then
    ip netns delete "$NETNS" || log "could not delete network namespace $NETNS"
  fi
  # Deleting the namespace destroys the pair; this is for a crash between the two.
  if ip link show "$VETH_HOST" >/dev/null 2>&1; then
    # (Deleting the namespace removes it asynchronously: it may be gone by now.)
    ip link delete "$VETH_HOST" 2>/dev/null || [[ ! -e "/sys/class/net/$VETH_HOST" ]] ||
      log "could not delete veth $VETH_HOST"
  fi
  rm -f "$MACHINE_DIR/node-$ID" "$UNDO"
  restore_sysctls
  rm -rf "${RN:?}/run" "$RN/ctrd" "$RN/kubelet-root"
  return 0
}

# ---------------------------------------------------------------------------
# up

unavailable() {
  mkdir -p "$RN"
  printf '%s\n' "$*" >"$RN/unavailable"
  log "WARNING: no real node in this cluster: $* (tests that need it will fail with this reason; see $RN/unavailable)"
  down
  exit 0
}

# A /30 in 10.200.0.0/16 that no interface or route of the machine uses yet.
pick_addresses() {
  local n i base
  n=$((16#$ID % 16384))
  for i in $(seq 0 63); do
    base=$(((n + i) % 16384 * 4))
    HOST_IP="10.200.$((base / 256)).$((base % 256 + 1))"
    NODE_IP="10.200.$((base / 256)).$((base % 256 + 2))"
    # Free: no address of ours on the machine, no route but the default one to it.
    if ! ip -4 -o addr show | grep -qE " (${HOST_IP//./\\.}|${NODE_IP//./\\.})/" &&
      ! ip -4 route show match "$NODE_IP" | grep -qv '^default'; then
      return 0
    fi
  done
  return 1
}

# The images the tests use, built from this machine's busybox-static as docker-archive
# tarballs (no registry, no image tool): local/busybox:1, local/busybox-root:1 and
# local/pause:1, one shared layer.
build_images() {
  local dir="$RN/images" root="$RN/images/rootfs" layer_sha a
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  chmod 1777 "$root/tmp"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do
    [[ "$a" == busybox ]] || ln -sf busybox "$root/bin/$a"
  done
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$dir/layer.tar" .
  layer_sha="$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)"
  # The pause container only waits to be stopped (pods here do not share a pid
  # namespace, so it has no zombies to reap).
  # Not root: the operator's pods run with runAsNonRoot unless the Runner says otherwise.
  image_archive busybox "$layer_sha" '"Cmd":["/bin/sh"],"User":"65534:65534"'
  # No user: runs as root, which the operator's default runAsNonRoot refuses.
  image_archive busybox-root "$layer_sha" '"Cmd":["/bin/sh"]'
  kubectl_image "$layer_sha"
  image_archive pause "$layer_sha" \
    '"Entrypoint":["/bin/sh","-c","trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait $!; done"]'
}

image_archive() { # image_archive NAME LAYER_SHA CONFIG_FIELDS [SECOND_LAYER_SHA]
  local name="$1" dir="$RN/images/$1" cfg cfg_sha ids layers files
  mkdir -p "$dir"
  ids="\"sha256:$2\"" layers='"layer.tar"' files="layer.tar"
  if [[ -n "${4:-}" ]]; then
    ids="$ids,\"sha256:$4\"" layers="$layers,\"layer2.tar\"" files="$files layer2.tar"
  fi
  cfg="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[${IMAGE_ENV:-\"PATH=/bin\"}],$3},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$ids]}}"
  cfg_sha="$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)"
  printf '%s' "$cfg" >"$dir/$cfg_sha.json"
  ln -f "$RN/images/layer.tar" "$dir/layer.tar"
  printf '[{"Config":"%s.json","RepoTags":["local/%s:1"],"Layers":[%s]}]' "$cfg_sha" "$name" "$layers" >"$dir/manifest.json"
  # shellcheck disable=SC2086
  tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$dir" -cf "$RN/images/$name.tar" manifest.json "$cfg_sha.json" $files
}

# local/kubectl:1: busybox plus the cluster's own kubectl, for the catalogue's steps
# (their public kubectl image cannot be pulled here). A second layer holds kubectl, so
# the busybox layer is shared. HOME=/tmp: the root filesystem of steps is read-only,
# and kubectl keeps its discovery cache under $HOME.
kubectl_image() { # kubectl_image BUSYBOX_LAYER_SHA
  local dir="$RN/images/kubectl"
  mkdir -p "$dir/root/bin"
  cp "$BIN_DIR/kubectl" "$dir/root/bin/kubectl"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir/root" -cf "$dir/layer2.tar" .
  IMAGE_ENV='"PATH=/bin","HOME=/tmp"' image_archive kubectl "$1" '"Cmd":["/bin/sh"],"User":"65534:65534"' \
    "$(sha256sum "$dir/layer2.tar" | cut -d' ' -f1)"
}

write_configs() {
  mkdir -p "$RN"/{cni/net.d,ctrd,kubelet-root,kubelet-pki,pod-logs,run}
  cat >"$RN/cni/net.d/10-pbo.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "pbo", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "dataDir": "$RN/cni/ipam",
            "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}
]}
EOF
  cat >"$RN/ctrd/config.toml" <<EOF
version = 2
root = "$RN/ctrd/root"
state = "$RN/ctrd/state"
# opt would create /opt/containerd; the others are unused snapshotters.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$RN/ctrd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/local/pause:1"
  # This machine's root lacks CAP_SYS_RESOURCE: lowering oom_score_adj fails every
  # sandbox ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RN/ctrd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RN/cni/net.d"
EOF
  # The API server has no kubelet client certificate (and kwok's kubelet API wants
  # none): it calls kubelets with no identity, so the kubelet allows anonymous
  # requests. It listens only on the namespace end of the veth.
  cat >"$RN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzPort: 0
containerRuntimeEndpoint: unix://$RN/ctrd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $CGPATH
failCgroupV1: false
failSwapOn: false
podLogsDir: $RN/pod-logs
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
registerWithTaints:
  - {key: $REAL_NODE_KEY, value: "true", effect: NoSchedule}
# An address nothing answers on: steps need no DNS, and without it every pod gets a
# MissingClusterDNS warning Event.
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
# Only memory: with disk thresholds a full disk on this shared machine made the kubelet
# delete the unused images (pause too), which cannot be pulled again.
evictionHard: {memory.available: 1Mi}
# Nor garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  # The kubelet reaches the API server through the forwarder on the host end of the
  # veth; the serving certificate names localhost.
  cat >"$RN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://$HOST_IP:$APISERVER_PORT
    tls-server-name: localhost
    certificate-authority: $STATE/pki/ca.crt
users:
- name: kubelet
  user:
    tokenFile: $STATE/pki/node:$REAL_NODE_NAME.token
contexts:
- name: kubelet
  context: {cluster: local, user: kubelet}
current-context: kubelet
EOF
  chmod 600 "$RN/kubeconfig"
}

# The node's cgroup CGPATH in every hierarchy, and `runtime` in it for the node's own
# processes (containerd, kubelet, socat); the kubelet makes `kubepods` beside it. The
# kubelet takes one path for all hierarchies, so parents missing in some (ours may be
# deeper in one, e.g. a memory limit of the session) are made, recorded, and removed
# by `down`.
make_cgroups() {
  local d c rel
  for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [[ -f "$d/cgroup.procs" ]] || continue
    c="${d%/}"
    for rel in ${CGPATH//\// } runtime; do
      c="$c/$rel"
      [[ -d "$c" ]] && continue
      mkdir "$c" || return 1
      echo "created=$c" >>"$UNDO"
      # A new cpuset cgroup is empty: no task may join until it has cpus and mems.
      if [[ -f "$c/cpuset.cpus" ]]; then
        cat "${c%/*}/cpuset.cpus" >"$c/cpuset.cpus" || return 1
        cat "${c%/*}/cpuset.mems" >"$c/cpuset.mems" || return 1
      fi
    done
  done
}

make_netns() {
  ip netns add "$NETNS" &&
    ip link add "$VETH_HOST" type veth peer name "$VETH_NODE" netns "$NETNS" &&
    ip addr add "$HOST_IP/30" dev "$VETH_HOST" &&
    ip link set "$VETH_HOST" up &&
    ip -n "$NETNS" addr add "$NODE_IP/30" dev "$VETH_NODE" &&
    ip -n "$NETNS" link set "$VETH_NODE" up &&
    ip -n "$NETNS" link set lo up
  # No default route: nothing on the node reaches beyond the host end of the veth, and
  # a pull of an image that is not there fails at once (ErrImagePull).
}

# The `kubernetes` Service's ClusterIP:port leads to the API server from the node's
# network namespace, as kube-proxy would make it (there is none): one DNAT rule in the
# namespace's PREROUTING (pods' traffic arrives from the bridge) to the apiserver
# forwarder (socat) on the host end of the veth. The bridge plugin's ipMasq rewrites
# the pod's source to the node's address, so the answer returns over the veth. Pods
# then use in-cluster config unchanged (KUBERNETES_SERVICE_HOST, the serving
# certificate names the ClusterIP). Lives in the namespace only: deleting it (down)
# deletes the rule; nothing on the host changes.
route_kubernetes_service() {
  local ip port rule
  ip="$("$BIN_DIR/kubectl" --kubeconfig "$STATE/kubeconfig" get service kubernetes -n default \
    -o 'jsonpath={.spec.clusterIP}')" || return 1
  port="$("$BIN_DIR/kubectl" --kubeconfig "$STATE/kubeconfig" get service kubernetes -n default \
    -o 'jsonpath={.spec.ports[?(@.name=="https")].port}')" || return 1
  [[ -n "$ip" && -n "$port" ]] || return 1
  rule=(PREROUTING -p tcp -d "$ip/32" --dport "$port" -j DNAT --to-destination "$HOST_IP:$APISERVER_PORT"
    -m comment --comment "pbo: default/kubernetes:https")
  ip netns exec "$NETNS" iptables -w -t nat -C "${rule[@]}" 2>/dev/null ||
    ip netns exec "$NETNS" iptables -w -t nat -A "${rule[@]}" || return 1
  echo "kubernetes_service=$ip:$port" >>"$UNDO"
}

# in_node NAME CMD... : run CMD detached in the node's cgroup; containerd in the
# node's network namespace and a new mount namespace, the kubelet in both of those
# (the kubelet's mounts must be containerd's); pid in pids/NAME.pid.
in_node() {
  local name="$1"
  shift
  setsid "$CLUSTER_SCRIPTS_DIR/realnode.sh" exec "$name" "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}

# `realnode.sh exec NAME CMD...`: the tail of in_node, in the new session.
exec_in_node() {
  local name="$1" d
  shift
  for d in $(hierarchies "$(undo_get "$UNDO" cgroup)"); do echo $$ >"$d/runtime/cgroup.procs"; done
  case "$name" in
    apiserver-forwarder) exec "$@" ;;
    containerd)
      # A private mount namespace with fresh /run, /var/lib and /var/log (see the top).
      # -n: no /run/mount/utab entry on the host.
      exec nsenter --net="/run/netns/$NETNS" -- unshare --mount --propagation slave -- sh -c \
        'mount -n -t tmpfs -o mode=755 pbo-run /run && mount -n -t tmpfs -o mode=755 pbo-varlib /var/lib &&
         mount -n -t tmpfs -o mode=755 pbo-varlog /var/log && exec "$@"' sh "$@"
      ;;
    *) exec nsenter --net="/run/netns/$NETNS" --mount="/proc/$(cat "$STATE/pids/containerd.pid")/ns/mnt" -- "$@" ;;
  esac
}

wait_until() { # wait_until WHAT PIDNAME CMD...
  local what="$1" pidname="$2" start=$SECONDS pid
  shift 2
  pid="$(cat "$STATE/pids/$pidname.pid")"
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$STATE/logs/$pidname.log" >&2 || true
      unavailable "$pidname exited while waiting for $what (log: $STATE/logs/$pidname.log)"
    fi
    if ((SECONDS - start >= TIMEOUT)); then
      tail -n 20 "$STATE/logs/$pidname.log" >&2 || true
      unavailable "timed out after ${TIMEOUT}s waiting for $what (log: $STATE/logs/$pidname.log)"
    fi
    sleep 0.1
  done
}

up() {
  # shellcheck source=/dev/null
  . "$STATE/env"
  rm -f "$RN/unavailable"
  down # debris of a crashed run of this state dir
  mkdir -p "$RN"
  if [[ "${PLAYBOOK_OPERATOR_REAL_NODE:-1}" == 0 ]]; then unavailable "disabled by PLAYBOOK_OPERATOR_REAL_NODE=0"; fi
  [[ "$(id -u)" == 0 ]] || unavailable "needs root (network namespace, cgroups, mounts); up.sh ran as $(id -un)"
  case "$STATE/" in /run/* | /var/lib/* | /var/log/*)
    unavailable "the state dir $STATE is under /run, /var/lib or /var/log, which the node's runtime gets fresh copies of" ;;
  esac
  [[ -x "$BIN_DIR/kubelet" ]] || unavailable "$BIN_DIR/kubelet is missing: run tests/cluster/build.sh"
  # A subshell: ensure_tools exits when apt-get fails.
  (ensure_tools containerd:containerd ctr:containerd runc:runc socat:socat iptables:iptables \
    busybox:busybox-static /usr/lib/cni/bridge:containernetworking-plugins) ||
    unavailable "the node's Debian packages are missing and could not be installed (see the apt-get output above)"
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] ||
    unavailable "no memory cgroup mounted under /sys/fs/cgroup"
  pick_addresses || unavailable "no free /30 for the node's veth in 10.200.0.0/16"

  # Record first, then change: a crash from here on is undone by `down`.
  mkdir -p "$MACHINE_DIR"
  if [[ ! -f "$MACHINE_DIR/sysctl.orig" ]]; then
    local k made
    for k in "${SYSCTLS[@]}"; do echo "$k=$(sysctl -n "$k")"; done >"$MACHINE_DIR/sysctl.orig.tmp"
    mv "$MACHINE_DIR/sysctl.orig.tmp" "$MACHINE_DIR/sysctl.orig"
    for made in /run/netns /run/mount; do [[ -e "$made" ]] || echo "$made"; done >"$MACHINE_DIR/made-dirs"
  fi
  # Under the deepest cgroup this shell is in: the node stays inside any limit the
  # machine puts on the session that started it.
  CGPATH="$(cut -d: -f3 /proc/self/cgroup | awk '{ print length($0) " " $0 }' | sort -rn | head -n1 | cut -d' ' -f2-)"
  CGPATH="${CGPATH%/}/pbo-$ID"
  cat >"$UNDO" <<EOF
# What realnode.sh up changed on the host; realnode.sh down undoes it. The network
# namespace and veth names derive from the state dir, so down finds them without it.
# Host sysctls: in $MACHINE_DIR/sysctl.orig, restored when the last real node stops.
netns=$NETNS
veth=$VETH_HOST
host_ip=$HOST_IP
node_ip=$NODE_IP
cgroup=$CGPATH
EOF
  echo "$UNDO" >"$MACHINE_DIR/node-$ID"

  local t0=$SECONDS
  make_cgroups || unavailable "cannot create the cgroup $CGPATH (see the error above)"
  make_netns || unavailable "cannot create network namespace $NETNS and its veth pair (see the error above)"

  write_configs
  build_images
  cat >>"$STATE/env" <<EOF
REAL_NODE_NAME=$REAL_NODE_NAME
REAL_NODE_KEY=$REAL_NODE_KEY
REAL_NODE_IP=$NODE_IP
REAL_NODE_HOST_IP=$HOST_IP
REAL_NODE_NETNS=$NETNS
EOF

  in_node apiserver-forwarder socat "TCP-LISTEN:$APISERVER_PORT,bind=$HOST_IP,reuseaddr,fork" "TCP:127.0.0.1:$APISERVER_PORT"
  in_node containerd containerd --config "$RN/ctrd/config.toml"
  wait_until "containerd" containerd ctr --address "$RN/ctrd/containerd.sock" version
  local img
  for img in busybox busybox-root pause kubectl; do
    ctr --address "$RN/ctrd/containerd.sock" -n k8s.io images import "$RN/images/$img.tar" >/dev/null ||
      unavailable "ctr could not import $RN/images/$img.tar"
  done
  in_node kubelet "$BIN_DIR/kubelet" --config="$RN/kubelet.yaml" --kubeconfig="$RN/kubeconfig" \
    --hostname-override="$REAL_NODE_NAME" --node-ip="$NODE_IP" \
    --root-dir="$RN/kubelet-root" --cert-dir="$RN/kubelet-pki" \
    --node-labels="$REAL_NODE_KEY=true" --v=1
  wait_until "node $REAL_NODE_NAME Ready" kubelet \
    "$BIN_DIR/kubectl" --kubeconfig "$STATE/kubeconfig" wait --for=condition=Ready --timeout=5s "node/$REAL_NODE_NAME"
  route_kubernetes_service ||
    unavailable "cannot route the kubernetes Service to the API server in netns $NETNS (see the error above)"
  log "real node $REAL_NODE_NAME Ready in $((SECONDS - t0)) s (node IP $NODE_IP in netns $NETNS; kubernetes Service $(undo_get "$UNDO" kubernetes_service) -> $HOST_IP:$APISERVER_PORT)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  exec) shift && exec_in_node "$@" ;;
  *) die "usage: $0 up|down" ;;
esac
