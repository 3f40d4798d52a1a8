# The two commands a newcomer needs are `make demo` and `make test`; the rest are
# their parts. Everything the tests need is built or installed by these targets.
SHELL := /bin/bash
CARGO ?= cargo

# Integration tests whose file name ends in `e2e` need the local control plane;
# every other test target is pure and runs without a cluster.
E2E_TESTS  := $(basename $(notdir $(wildcard tests/*e2e.rs)))
UNIT_TESTS := $(filter-out $(E2E_TESTS),$(basename $(notdir $(wildcard tests/*.rs))))

.PHONY: all build test check fmt unit crds catalogue demo bench bench-stock chaos chart-check

all: build

build:
	$(CARGO) build --release --locked

## test: formatting, lints, unit tests, then the end-to-end tests on the local control plane.
test: check unit chart-check test-e2e

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --lib --bins $(addprefix --test ,$(UNIT_TESTS))

## chart-check: helm lint and helm template (default and ci/full-values.yaml), and bad values rejected.
chart-check:
	tests/chart-check.sh

fmt:
	$(CARGO) fmt --all

## demo: build, start the local control plane, apply the examples, show what would run.
demo:
	tests/demo.sh

## bench: the execution page's render time with 10,000 Executions cached (no cluster),
## then 200 Executions of a 4-step playbook against 200 bare Job chains (the floor),
## and again with steps as bare Pods against bare Pod chains,
## with the API server's writes per step and 20 idle single runs after,
## then 10,000 alerts (with duplicates) at the webhook, then the operator's RSS with
## 10,000 finished Executions (and per 1,000 more), on the local control plane
## (started if it is not up). BENCH_PAGE_EXECUTIONS=N, BENCH_EXECUTIONS=N,
## BENCH_ALERTS=N, BENCH_MEMORY_EXECUTIONS=N to change.
bench:
	$(CARGO) bench --locked --bench page
	$(CARGO) bench --locked --bench controller --bench alerts --bench memory --no-run
	tests/cluster/with-cluster.sh bash -c '$(CARGO) bench --locked --bench controller && $(CARGO) bench --locked --bench alerts && $(CARGO) bench --locked --bench memory'
	$(MAKE) bench-stock

## bench-stock: the controller bench (steps as Jobs and as bare Pods, each beside its
## floor) on a cluster of its own at upstream kube-controller-manager's default client
## limits, where the Job controller caps Job-based runs.
bench-stock:
	$(CARGO) bench --locked --bench controller --no-run
	PLAYBOOK_OPERATOR_CLUSTER_DIR="$${PLAYBOOK_OPERATOR_CLUSTER_DIR:-/tmp/playbook-operator-cluster-$${USER:-$$(id -un)}}-stock" \
	  KCM_QPS=20 KCM_BURST=30 KCM_CONCURRENT_JOB_SYNCS=5 \
	  tests/cluster/with-cluster.sh $(CARGO) bench --locked --bench controller

## chaos: 200 Executions of a 4-step playbook while the operator is SIGKILLed every
## 0.1-1 s and the API server and etcd are each restarted once, on the local control
## plane (started if it is not up); prints the counts. CHAOS_EXECUTIONS=N to change,
## CHAOS_SEED=N to repeat a run's kill times. `make test` runs 20 (tests/chaos_e2e.rs).
chaos:
	$(CARGO) test --locked --test chaos_e2e --no-run
	CHAOS_EXECUTIONS=$${CHAOS_EXECUTIONS:-200} tests/cluster/with-cluster.sh \
		$(CARGO) test --locked --test chaos_e2e -- --nocapture

## crds: regenerate crds/ from the API types, and the chart's copies (tests fail when they drift).
crds:
	$(CARGO) run --quiet --locked -- crd --out-dir crds
	cp crds/*.stackpulse.io.yaml charts/playbook-operator/crds/
	cp crds/admission-policies.yaml charts/playbook-operator/files/

## catalogue: copy catalogue/ into the chart, which embeds it (a test fails when they drift).
catalogue:
	rm -rf charts/playbook-operator/files/catalogue
	mkdir -p charts/playbook-operator/files/catalogue
	cp -r catalogue/*/ charts/playbook-operator/files/catalogue/

include tests/cluster/cluster.mk
