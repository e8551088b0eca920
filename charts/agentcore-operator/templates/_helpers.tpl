{{/*
Chart name, truncated to 63 characters (the DNS label limit of Kubernetes names).
*/}}
{{- define "agentcore-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name used for every resource. A release already named after the chart is not repeated, so
`helm install agentcore-operator ...` yields `agentcore-operator`, the name the operator's
defaults (lease name) and the docs use.
*/}}
{{- define "agentcore-operator.fullname" -}}
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

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "agentcore-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "agentcore-operator.labels" -}}
helm.sh/chart: {{ include "agentcore-operator.chart" . }}
{{ include "agentcore-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentcore-operator
{{- end }}

{{/*
Selector labels: immutable in a Deployment, so they hold nothing that changes between upgrades.
*/}}
{{- define "agentcore-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentcore-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
ServiceAccount name: the RBAC bindings, IRSA trust policies and Pod Identity associations all
refer to it.
*/}}
{{- define "agentcore-operator.serviceAccountName" -}}
{{- default (include "agentcore-operator.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/*
Lease name. The Role grants get/update/patch on this name only, so the flag and the Role must
come from the same helper.
*/}}
{{- define "agentcore-operator.leaseName" -}}
{{- include "agentcore-operator.fullname" . }}
{{- end }}

{{- define "agentcore-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "agentcore-operator.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/*
Image reference: a digest pins the image; otherwise the tag, defaulting to appVersion.
*/}}
{{- define "agentcore-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Permissions the reconciler needs on BatchEvaluations and Events, as listed in the chart's README
(section RBAC; hack/chart_contract.py checks the rendered roles against it). Shared by the
ClusterRole (all namespaces) and the Role (one namespace) so the two modes cannot drift apart.
*/}}
{{- define "agentcore-operator.reconcilerRules" -}}
- apiGroups:
    - evals.agentcore.dev
  resources:
    - batchevaluations
  verbs:
    - get
    - list
    - watch
    - patch
    - update
    - create
    - delete
- apiGroups:
    - evals.agentcore.dev
  resources:
    - batchevaluationschedules
  verbs:
    - get
    - list
    - watch
    - patch
- apiGroups:
    - evals.agentcore.dev
  resources:
    - batchevaluationschedules/status
  verbs:
    - get
    - patch
- apiGroups:
    - evals.agentcore.dev
  resources:
    - batchevaluations/status
  verbs:
    - get
    - patch
    - update
- apiGroups:
    - evals.agentcore.dev
  resources:
    - batchevaluations/finalizers
  verbs:
    - update
- apiGroups:
    - events.k8s.io
  resources:
    - events
  verbs:
    - create
    - patch
{{- end }}

{{/*
PromQL label matchers that select this release's series (see metrics.prometheusRule.selector).
*/}}
{{- define "agentcore-operator.promSelector" -}}
{{- default (printf "job=%q" (include "agentcore-operator.metricsServiceName" .)) .Values.metrics.prometheusRule.selector }}
{{- end }}

{{/*
True when the ServiceAccount carries an IRSA role annotation; NOTES.txt warns otherwise.
*/}}
{{- define "agentcore-operator.hasIrsa" -}}
{{- if hasKey (.Values.serviceAccount.annotations | default dict) "eks.amazonaws.com/role-arn" }}true{{ end }}
{{- end }}
