#!/usr/bin/env bash
# Run the end-to-end test targets (tests/*e2e*.rs) against a cluster, started and
# stopped by with-cluster.sh when it is not up already (see there).
# Extra arguments go to `cargo test` (after the targets), e.g.
# tests/cluster/e2e.sh -- --nocapture
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../.."

# Compile first: a build error needs no cluster, and the cluster does not idle
# through a long compile.
cargo test --test '*e2e*' --no-run "$@"
exec tests/cluster/with-cluster.sh cargo test --test '*e2e*' "$@"
