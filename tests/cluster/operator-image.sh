#!/usr/bin/env bash
# The operator's image without Docker: the image ../../Dockerfile describes (the binary
# as /usr/local/bin/playbook-operator on a minimal glibc base, user 65532:65532, the
# same entrypoint, command, exposed port and labels), assembled from this machine's
# files as a docker-archive the way realnode.sh builds local/busybox:1, and imported
# into the real node's containerd under the chart's default image name, so the chart
# installs with its default `image` values.
#
# Usage: tests/cluster/operator-image.sh [BINARY]   build and import (BINARY default:
#                                                   target/debug/playbook-operator)
#        tests/cluster/operator-image.sh config     print the image's config (tests/chart.rs
#                                                   checks it against the Dockerfile)
# Environment: PLAYBOOK_OPERATOR_CLUSTER_DIR (the cluster, as for up.sh),
#              IMAGE (default playbook-operator:<the chart's appVersion>).
#
# The base is what distroless/cc-debian12 holds and the binary needs: the shared
# libraries `ldd` names (the binary links glibc, as with the Dockerfile's bookworm
# build; this machine is Debian 12 too), CA certificates, /etc/passwd with `nonroot`
# (65532) and a /tmp. The binary's debug sections are stripped (objcopy): the debug
# build is ~10x larger with them, and the image only needs the code.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

REPO_ROOT="$(cd "$CLUSTER_SCRIPTS_DIR/../.." && pwd)"
APP_VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$REPO_ROOT/charts/playbook-operator/Chart.yaml")"
IMAGE="${IMAGE:-playbook-operator:$APP_VERSION}"
BIN_PATH=/usr/local/bin/playbook-operator

# The Dockerfile's final stage, as an image config (keep the two in step: tests/chart.rs).
config() {
  cat <<EOF
{"User":"65532:65532","ExposedPorts":{"8080/tcp":{}},
"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
"Entrypoint":["$BIN_PATH"],"Cmd":["run"],"WorkingDir":"/home/nonroot",
"Labels":{"org.opencontainers.image.title":"playbook-operator","org.opencontainers.image.licenses":"Apache-2.0"}}
EOF
}

if [[ "${1:-}" == config ]]; then
  config | tr -d '\n'
  echo
  exit 0
fi

BINARY="${1:-$REPO_ROOT/target/debug/playbook-operator}"
[[ -x "$BINARY" ]] || die "$BINARY is missing: cargo build --bin playbook-operator (or make build and pass target/release/playbook-operator)"
STATE="$(cluster_state_dir)"
RN="$STATE/realnode"
SOCK="$RN/ctrd/containerd.sock"
[[ ! -f "$RN/unavailable" ]] || die "the cluster has no real node: $(cat "$RN/unavailable")"
[[ -S "$SOCK" ]] || die "no real node's containerd at $SOCK: start the cluster (tests/cluster/up.sh)"
ensure_tools objcopy:binutils ldd:libc-bin ctr:containerd

dir="$RN/images/operator"
root="$dir/rootfs"
rm -rf "$dir"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
chmod 1777 "$root/tmp"
objcopy --strip-debug "$BINARY" "$root$BIN_PATH"
# Every library the loader maps, at the path it maps it from (the loader itself too).
ldd "$BINARY" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\nnonroot:x:65532:\n' >"$root/etc/group"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$dir/layer.tar" .
layer_sha="$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)"
layer_mib=$(($(stat -c %s "$dir/layer.tar") / 1048576))
cfg="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":$(config | tr -d '\n'),\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$layer_sha\"]}}"
cfg_sha="$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)"
printf '%s' "$cfg" >"$dir/$cfg_sha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$cfg_sha" "$IMAGE" >"$dir/manifest.json"
tar --mtime=@0 --owner=0 --group=0 -C "$dir" -cf "$dir/image.tar" manifest.json "$cfg_sha.json" layer.tar
rm -rf "$root" "$dir/layer.tar"
ctr --address "$SOCK" -n k8s.io images import "$dir/image.tar" >/dev/null
rm -f "$dir/image.tar"
log "imported $IMAGE into the real node: config sha256:$cfg_sha, one layer of $layer_mib MiB ($BINARY: $(($(stat -c %s "$BINARY") / 1048576)) MiB before stripping)"
