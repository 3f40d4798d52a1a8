# Local Kubernetes control plane for tests and the demo (see tests/cluster/README.md).
# Included by the top-level Makefile: `include tests/cluster/cluster.mk`.

CLUSTER_SCRIPTS := tests/cluster

.PHONY: cluster-build cluster-up cluster-down cluster-status test-e2e

## cluster-build: build the pinned kube-apiserver, etcd, kwok, ... into the cache (~10 min cold, ~1 s warm)
cluster-build:
	@$(CLUSTER_SCRIPTS)/build.sh >/dev/null

## cluster-up: start the local cluster (prints `export KUBECONFIG=...`)
cluster-up: cluster-build
	@$(CLUSTER_SCRIPTS)/up.sh

## cluster-down: stop it (KEEP=1 keeps state and logs)
cluster-down:
	@$(CLUSTER_SCRIPTS)/down.sh

## cluster-status: exit 0 if the local cluster answers
cluster-status:
	@$(CLUSTER_SCRIPTS)/up.sh --status && echo "cluster is up" || { echo "cluster is down"; exit 1; }

## test-e2e: run tests/*e2e*.rs; starts the cluster if it is not running and then always stops it
test-e2e:
	@$(CLUSTER_SCRIPTS)/e2e.sh $(E2E_ARGS)
