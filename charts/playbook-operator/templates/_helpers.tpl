{{/* Names and labels shared by every template. */}}

{{- define "playbook-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "playbook-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "playbook-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "playbook-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "playbook-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "playbook-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "playbook-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "playbook-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the existing ServiceAccount (or set serviceAccount.create=true)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "playbook-operator.leaseName" -}}
{{- default (include "playbook-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The Secret holding the webhook token(s), or "" when there is none. */}}
{{- define "playbook-operator.webhookSecret" -}}
{{- if .Values.webhook.auth.existingSecret }}
{{- .Values.webhook.auth.existingSecret }}
{{- else if .Values.webhook.auth.create }}
{{- printf "%s-webhook" (include "playbook-operator.fullname" .) }}
{{- end }}
{{- end }}

{{/*
What the operator does with the API, rule by rule: the ClusterRole (all namespaces)
or the Role (watchNamespace) both use exactly this list. README.md explains each
rule; tests/chart_e2e.rs fails when a rule here is not used by a real run (or a run
is denied something), so this list stays the least the operator needs.
*/}}
{{- define "playbook-operator.rules" -}}
# The Execution controller watches Executions; history pruning (historyLimit,
# ttlSecondsAfterFinished) deletes finished ones. create: the alert webhooks start
# runs; list and patch: a resolved alert sets spec.cancel on the runs its firing
# started (cancelOnResolve). delegate (a custom verb no request uses): the admission
# policy lets the operator name a Trigger's or Schedule's last writer as the
# requester of the runs it starts, and nobody else may name anyone but themself.
# get: the caches keep finished runs slimmed, so the execution page reads a finished
# run whole (one GET per view), as the controller does before planning one again.
- apiGroups: [stackpulse.io]
  resources: [executions]
  verbs: [get, list, watch, delete, create, patch, delegate]
# Playbooks and Runners: caches for the planner, and their Ready conditions.
- apiGroups: [stackpulse.io]
  resources: [playbooks, runners]
  verbs: [list, watch]
# Triggers: which alerts start which playbook (a cache in every replica); get: the
# history pruner reads one to add a pruned alert run to its status.
- apiGroups: [stackpulse.io]
  resources: [triggers]
  verbs: [get, list, watch]
# Schedules: the Schedule controller starts their runs at each tick (create and
# delegate on executions above; patch: concurrencyPolicy Replace cancels a run).
- apiGroups: [stackpulse.io]
  resources: [schedules]
  verbs: [list, watch]
# Status of each kind, written by server-side apply (a PATCH); a Trigger's holds
# its Ready condition, its match counts and its pruned alert runs, a Playbook's
# the remediation claims of its pruned runs.
- apiGroups: [stackpulse.io]
  resources: [executions/status, playbooks/status, runners/status, triggers/status, schedules/status]
  verbs: [patch]
# Each step runs as a Job: created under a deterministic name, deleted on cancel
# and timeout; watched (only those labelled with an Execution uid) for their ends.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, delete]
# Step Pods: watched to see a step container end before the Job controller does.
# With rbac.podWorkloads, a Runner with `workload: Pod` runs each attempt as a bare
# Pod, created and deleted as Jobs are (get: the page finds its log by name). Off by
# default: creating Pods is a strong right, and Job Runners never need it.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch{{ if .Values.rbac.podWorkloads }}, get, create, delete{{ end }}]
# The step's output is the end of its log (one bounded read per ended step).
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# One Event per Execution transition.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
# The execution page shows each run's Events: a cache of the Events about
# Executions (field selector involvedObject.kind=Execution) in every replica.
- apiGroups: [""]
  resources: [events]
  verbs: [list, watch]
# An image parser's input (the step's raw output), and a parsed output too large
# for status, in ConfigMaps owned by the Execution: created (AlreadyExists means
# ours; the garbage collector deletes them with it), and the spilled output read
# back for later steps' templates. No list or watch: only the ConfigMaps a status
# names are read, by name.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, get]
{{- end }}

{{/* The Secret holding the notify config file, or "" when chat is off. */}}
{{- define "playbook-operator.notifySecret" -}}
{{- if .Values.notify.existingSecret }}
{{- .Values.notify.existingSecret }}
{{- else if .Values.notify.channels }}
{{- printf "%s-notify" (include "playbook-operator.fullname" .) }}
{{- end }}
{{- end }}
