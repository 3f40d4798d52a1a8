#!/usr/bin/env bash
# `make chart-check`: helm lint and helm template of charts/playbook-operator with the
# default values, with ci/full-values.yaml (every optional part on) and with
# ci/multi-tenant-values.yaml, the secure
# defaults in the rendered Deployment, the chat-approval impersonate rule naming
# exactly the mapped people, and values.schema.json rejecting bad values
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

# Chat: nothing of it by default. The full values' inline config becomes a chart-made
# Secret mounted read-only and passed as --notify-config-file; chat approvals add one
# ClusterRole whose impersonate rules name exactly the mapped users and groups, and
# the tokens appear nowhere but (base64) in that Secret.
! grep -qiE 'notify|impersonate' "$out/default.yaml" || fail "the default render has something of chat notifications"
for want in '- --notify-config-file=/var/run/notify/notify.yaml' '- --notify-timeout-seconds=5' \
  'name: notify-config' 'mountPath: /var/run/notify' 'secretName: pbo-notify' \
  'checksum/notify-secret:' 'name: pbo-chat-approvals'; do
  grep -qF -- "$want" "$out/full.yaml" || fail "the full render lacks '$want'"
done
! grep -q 'not-a-real-s' "$out/full.yaml" || fail "a chat credential is in the render outside its Secret's base64"
# impersonate_names FILE RESOURCE: the resourceNames of the impersonate rule on RESOURCE.
impersonate_names() {
  awk -v res="$2" '$0 ~ "resources: \\[" res "\\]" { on = 1; next }
    on && /verbs: \[impersonate\]/ { next }
    on && /resourceNames:/ { sub(/^ *resourceNames: */, ""); print; exit }
    { on = 0 }' "$1"
}
[[ "$(grep -c 'verbs: \[impersonate\]' "$out/full.yaml")" == 2 ]] || fail "the full render has other than one impersonate rule on users and one on groups"
[[ "$(impersonate_names "$out/full.yaml" users)" == '["bob","carol"]' ]] ||
  fail "the impersonate rule on users names $(impersonate_names "$out/full.yaml" users), not exactly [bob, carol]"
[[ "$(impersonate_names "$out/full.yaml" groups)" == '["sre"]' ]] ||
  fail "the impersonate rule on groups names $(impersonate_names "$out/full.yaml" groups), not exactly [sre]"
# An existing Secret (whose mapping the chart cannot read): the values' lists, no
# Secret made, and no groups rule without groups; a ClusterRole even with watchNamespace.
"$HELM" template pbo "$CHART" --namespace ops --kube-version "$KUBE_VERSION" --set watchNamespace=ops \
  --set notify.existingSecret=chat --set notify.chatApprovals.enabled=true \
  --set 'notify.chatApprovals.users={alice}' >"$out/chat.yaml"
[[ "$(impersonate_names "$out/chat.yaml" users)" == '["alice"]' ]] || fail "with an existing Secret the impersonate rule does not name exactly alice"
[[ "$(grep -c 'verbs: \[impersonate\]' "$out/chat.yaml")" == 1 ]] || fail "a groups impersonate rule without groups"
grep -qF 'secretName: chat' "$out/chat.yaml" || fail "the existing notify Secret is not mounted"
! grep -q 'kind: Secret$' "$out/chat.yaml" || fail "a Secret made though notify.existingSecret names one"
grep -B3 'name: pbo-playbook-operator-chat-approvals' "$out/chat.yaml" | grep -q 'kind: ClusterRole' || fail "no chat-approvals ClusterRole with watchNamespace"

# The jq sandbox fits inside the pod: `run` gives each filter's process
# --jq-memory-bytes, or else half the container's memory limit, at most 1 GiB
# (src/jq_sandbox.rs, sandbox_memory). That plus the operator's own share (its
# memory request) must fit under the limit, or the pod is OOM-killed, operator and all.
jq_sandbox_fits() {
  local file="$1" limit request flag sandbox
  read -r limit request < <(awk '
    /^          resources:/ { inres = 1; next }
    inres && /^          [^ ]/ { inres = 0 }
    inres && /limits:/ { sec = "l" }
    inres && /requests:/ { sec = "r" }
    inres && /memory:/ { if (sec == "l") l = $2; else r = $2 }
    END { print l, r }' "$file")
  [[ -n "$limit" && -n "$request" ]] || { echo "no memory limit and request in $file"; return 1; }
  limit="$(numfmt --from=auto "$limit")" request="$(numfmt --from=auto "$request")"
  flag="$(sed -n 's/^ *- --jq-memory-bytes=\([0-9]*\)$/\1/p' "$file")"
  sandbox="${flag:-$((limit / 2 < 1073741824 ? limit / 2 : 1073741824))}"
  echo "jq sandbox ${sandbox} B + operator request ${request} B vs pod limit ${limit} B"
  ((sandbox + request <= limit)) ||
    { echo "the jq sandbox (${sandbox} B) and the operator's request (${request} B) exceed the memory limit (${limit} B): lower jqMemoryBytes or raise resources.limits.memory"; return 1; }
}
jq_sandbox_fits "$out/default.yaml" || fail "default values: the jq sandbox does not fit"
jq_sandbox_fits "$out/full.yaml" || fail "full values: the jq sandbox does not fit"
"$HELM" template pbo "$CHART" --namespace ops --kube-version "$KUBE_VERSION" --set jqMemoryBytes=536870912 >"$out/greedy.yaml"
! jq_sandbox_fits "$out/greedy.yaml" >/dev/null || fail "jqMemoryBytes equal to the pod limit passed the fit check"
# One tenant by default: every signed-in user may use the default Runner, and the
# webhook has no tenant label; the multi-tenant example sets both.
grep -qF -- 'name: "system:authenticated"' "$out/default.yaml" || fail "the default render does not grant use of the default Runner"
! grep -q -- '--webhook-tenant-label' "$out/default.yaml" || fail "the default render sets a tenant label"
"$HELM" template pbo "$CHART" --namespace ops --kube-version "$KUBE_VERSION" -f "$CHART/ci/multi-tenant-values.yaml" >"$out/tenants.yaml"
for want in '- --webhook-tenant-label=namespace' '- --webhook-admin-namespaces=monitoring' \
  'name: "sre"' 'verbs: [use]'; do
  grep -qF -- "$want" "$out/tenants.yaml" || fail "the multi-tenant render lacks '$want'"
done

# The catalogue, on with one entry off: every other entry's objects render in the
# release namespace (its ClusterRoleBindings' subjects moved there), lint clean.
echo "helm lint and template with catalogue.enabled=true, catalogue.playbooks.kube-hpa-maxed-out=false"
cat_args=(--kube-version "$KUBE_VERSION" --set catalogue.enabled=true --set catalogue.playbooks.kube-hpa-maxed-out=false)
"$HELM" lint --strict "$CHART" "${cat_args[@]}" >"$out/lint" 2>&1 || { cat "$out/lint" >&2; fail "helm lint with the catalogue failed"; }
"$HELM" template pbo "$CHART" --namespace ops "${cat_args[@]}" >"$out/catalogue.yaml" 2>"$out/err" ||
  { cat "$out/err" >&2; fail "helm template with the catalogue failed"; }
for entry in catalogue/*/; do
  entry="$(basename "$entry")"
  n="$(grep -cE "^  name: (playbook-catalogue-|catalogue-)?$entry\$" "$out/catalogue.yaml" || true)"
  if [[ "$entry" == kube-hpa-maxed-out ]]; then
    ((n == 0)) || fail "catalogue.playbooks.$entry=false still renders $n names of its objects"
  else
    # Playbook, Trigger or Schedule, Runner, ServiceAccount, ClusterRole, and the
    # ClusterRoleBinding (its own name, its roleRef's and its subject's).
    ((n == 8)) || fail "catalogue entry $entry renders $n names of its objects, not 8"
  fi
done
grep -qF 'kind: Schedule' "$out/catalogue.yaml" || fail "the catalogue render lacks the cluster-health Schedule"
! grep -q 'namespace: playbook-catalogue' "$out/catalogue.yaml" || fail "a catalogue object kept the kustomization's namespace"
! grep -qF 'kind: Playbook' "$out/default.yaml" || fail "the default render installs catalogue playbooks"

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
reject --set notify.chatApprovals.enabled=true "notify.chatApprovals.enabled: chat approvals need the notify config"
reject --set notify.existingSecret=chat --set notify.chatApprovals.enabled=true "notify.chatApprovals.users: list the Kubernetes users"
reject -f "$CHART/ci/full-values.yaml" --set 'notify.chatApprovals.users={bob}' 'notify.chatApprovals.users must be exactly the users of notify.slackApprovals.users: ["bob","carol"]'
reject -f "$CHART/ci/full-values.yaml" --set notify.chatApprovals.enabled=false "notify.slackApprovals is set but notify.chatApprovals.enabled is false"
reject --set notify.existingSecret=chat --set notify.chatApprovals.enabled=true --set 'notify.chatApprovals.groups={system:masters}' \
  --set 'notify.chatApprovals.users={bob}' "notify.chatApprovals.groups: system:masters would let the operator act as cluster-admin"
reject --set-json 'notify.channels=[{"name":"sre","namespaces":["ops"],"teams":{"url":"teams.example.com"}}]' "at '/notify/channels/0/teams/url'"
reject --set notify.timeoutSeconds=0 "at '/notify/timeoutSeconds'"
reject --set catalogue.enabled=true --set catalogue.playbooks.kube-pod-crashlooping=true "additional properties 'kube-pod-crashlooping' not allowed"
echo "chart-check: ok"
