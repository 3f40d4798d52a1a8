#!/usr/bin/env bash
# `make chart-check`: helm lint and helm template of charts/playbook-operator with the
# default values, with ci/full-values.yaml (every optional part on) and with
# ci/multi-tenant-values.yaml, the secure
# defaults in the rendered Deployment, and values.schema.json rejecting bad values
# with a message that names them. helm is the pinned one tests/cluster/build.sh
# builds from the Go module proxy (it builds what is missing, then prints its bin dir).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

HELM="$(tests/cluster/build.sh | tail -n 1)/helm"
CHART=charts/playbook-operator
# helm template assumes Kubernetes 1.20 unless told; the chart needs 1.30+.
KUBE_VERSION="$(sed -n 's/^KUBERNETES_VERSION=//p' tests/cluster/versions.env)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

fail() { echo "chart-check: $*" >&2; exit 1; }

for values in "" "$CHART/ci/full-values.yaml" "$CHART/ci/multi-tenant-values.yaml"; do
  args=(--kube-version "$KUBE_VERSION")
  [[ -n "$values" ]] && args+=(-f "$values")
  echo "helm lint ${values:-(default values)}"
  "$HELM" lint --strict "$CHART" "${args[@]}" >"$out/lint" 2>&1 || { cat "$out/lint" >&2; fail "helm lint failed"; }
  echo "helm template ${values:-(default values)}"
  "$HELM" template pbo "$CHART" --namespace ops "${args[@]}" >"$out/rendered.yaml" 2>"$out/err" ||
    { cat "$out/err" >&2; fail "helm template failed"; }
done

# The secure defaults, as rendered with the default values.
"$HELM" template pbo "$CHART" --namespace ops --kube-version "$KUBE_VERSION" >"$out/default.yaml"
for want in 'replicas: 2' 'runAsNonRoot: true' 'readOnlyRootFilesystem: true' \
  'allowPrivilegeEscalation: false' '- ALL' 'type: RuntimeDefault' 'path: /healthz' \
  'path: /readyz' 'fieldPath: metadata.name' 'fieldPath: metadata.namespace' \
  '- --leader-elect' 'kind: PodDisruptionBudget' 'kind: ClusterRole' 'kind: Runner' \
  'kind: ValidatingAdmissionPolicy' 'terminationGracePeriodSeconds: 30' 'preStop:'; do
  grep -qF -- "$want" "$out/default.yaml" || fail "the default render lacks '$want'"
done
grep -A8 '^          resources:' "$out/default.yaml" | grep -q 'limits:' || fail "no resource limits by default"
# The operator's rights never include Secrets: a Runner's Secret check treats 403 as
# "unchecked" on purpose, and step Pods get their Secrets through secretKeyRef.
! grep -qE '^\s*resources: \[.*\bsecrets\b' "$out/default.yaml" || fail "the default RBAC grants something on secrets"

# Each signing secret configured is a file path in env, and its key is in the created
# Secret; the values themselves never appear in env.
"$HELM" template pbo "$CHART" --namespace ops --kube-version "$KUBE_VERSION" -f "$CHART/ci/full-values.yaml" >"$out/full.yaml"
for want in 'PLAYBOOK_OPERATOR_WEBHOOK_TOKEN_FILE' 'value: "/var/run/webhook/token"' \
  'PLAYBOOK_OPERATOR_WEBHOOK_PAGERDUTY_SECRET_FILE' 'value: "/var/run/webhook/pagerduty"' \
  'PLAYBOOK_OPERATOR_WEBHOOK_GRAFANA_SECRET_FILE' 'value: "/var/run/webhook/grafana"' \
  "pagerduty: $(printf not-a-real-pagerduty-secret | base64 | sed 's/^/"/; s/$/"/')"; do
  grep -qF -- "$want" "$out/full.yaml" || fail "the full render lacks '$want'"
done
! grep -q 'GENERIC_SECRET_FILE' "$out/full.yaml" || fail "generic's secret file is set though genericKey is empty"
! grep -q 'value: "not-a-real' "$out/full.yaml" || fail "a webhook secret's value is in env"

# One tenant by default: every signed-in user may use the default Runner, and the
# webhook has no tenant label; the multi-tenant example sets both.
grep -qF -- 'name: "system:authenticated"' "$out/default.yaml" || fail "the default render does not grant use of the default Runner"
! grep -q -- '--webhook-tenant-label' "$out/default.yaml" || fail "the default render sets a tenant label"
"$HELM" template pbo "$CHART" --namespace ops --kube-version "$KUBE_VERSION" -f "$CHART/ci/multi-tenant-values.yaml" >"$out/tenants.yaml"
for want in '- --webhook-tenant-label=namespace' '- --webhook-admin-namespaces=monitoring' \
  'name: "sre"' 'verbs: [use]'; do
  grep -qF -- "$want" "$out/tenants.yaml" || fail "the multi-tenant render lacks '$want'"
done

# reject VALUES... MESSAGE: helm template must fail, saying MESSAGE.
reject() {
  local msg="${*: -1}" args=("${@:1:$#-1}")
  if "$HELM" template pbo "$CHART" --kube-version "$KUBE_VERSION" "${args[@]}" >/dev/null 2>"$out/err"; then
    fail "helm template accepted ${args[*]}"
  fi
  grep -qF -- "$msg" "$out/err" || { cat "$out/err" >&2; fail "rejecting ${args[*]}: the error does not say '$msg'"; }
  echo "rejected ${args[*]}: $(grep -F -- "$msg" "$out/err" | head -n 1 | sed 's/^[- ]*//')"
}
reject --set replicaCount=two "at '/replicaCount': got string, want integer"
reject --set logFormat=xml "at '/logFormat': value must be one of 'text', 'json'"
reject --set watchNamespace=Ops_Team "at '/watchNamespace'"
reject --set 'watchNamespaces={a,b}' "additional properties 'watchNamespaces' not allowed"
reject --set resources.limits=null "at '/resources': missing property 'limits'"
reject --set externalURL=pbo.example.com "at '/externalURL'"
reject --set webhook.auth.create=true "webhook.auth.token: set the bearer token"
reject --set webhook.auth.create=true --set webhook.auth.token=t --set webhook.auth.genericKey=generic "webhook.auth.genericSecret: set generic's signing secret"
reject --set webhook.auth.pagerdutyKey=../x "at '/webhook/auth/pagerdutyKey'"
reject --set serviceAccount.create=false "serviceAccount.name: name the existing ServiceAccount"
echo "chart-check: ok"
