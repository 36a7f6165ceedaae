{{/* Names and labels. */}}
{{- define "ragkit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ragkit.fullname" -}}
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

{{- define "ragkit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ragkit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ragkit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ragkit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ragkit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ragkit.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ragkit.secretName" -}}
{{- default (include "ragkit.fullname" .) .Values.apiKeys.existingSecret }}
{{- end }}

{{- define "ragkit.claimName" -}}
{{- default (include "ragkit.fullname" .) .Values.persistence.existingClaim }}
{{- end }}

{{/* The service settings file (ragkit serve --config): pipelines and the `settings` map. */}}
{{- define "ragkit.serviceSettings" -}}
{{- $settings := merge (dict "pipelines" .Values.pipelines "default_pipeline" .Values.defaultPipeline) (deepCopy .Values.settings) }}
{{- toYaml $settings }}
{{- end }}

{{/*
Refuse values that cannot work: several replicas without a shared Milvus (collections on one
node's volume), or in Milvus mode without a store folder every replica shares.
*/}}
{{- define "ragkit.validate" -}}
{{- $milvus := .Values.milvus.uri }}
{{- $many := or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}
{{- if and $many (not $milvus) }}
{{- fail "single-node mode (milvus.uri empty) keeps collections on one volume: set replicaCount: 1 and autoscaling.enabled: false, or set milvus.uri to a shared Milvus" }}
{{- end }}
{{- if and $many $milvus }}
{{- $shared := or .Values.persistence.existingClaim (has "ReadWriteMany" .Values.persistence.accessModes) }}
{{- if not (and .Values.persistence.enabled $shared) }}
{{- fail "several replicas share the store folder (collection configs, uploads, keyword indexes): set persistence.accessModes: [ReadWriteMany] or persistence.existingClaim (a volume every replica mounts)" }}
{{- end }}
{{- end }}
{{- if and $milvus (not (regexMatch "^(https?|tcp)://" $milvus)) }}
{{- fail (printf "milvus.uri %q must be http(s)://host:port (a Milvus server or cluster)" $milvus) }}
{{- end }}
{{- if not (hasKey .Values.pipelines .Values.defaultPipeline) }}
{{- fail (printf "defaultPipeline %q is not one of pipelines (%s)" .Values.defaultPipeline (keys .Values.pipelines | sortAlpha | join ", ")) }}
{{- end }}
{{- range $name, $text := .Values.recipes }}
{{- if or (not (regexMatch "^[A-Za-z0-9][A-Za-z0-9_-]*[.]yaml$" $name)) (has $name (list "service.yaml" "milvus-server.yaml")) }}
{{- fail (printf "recipes: %q must be a file name such as support.yaml (not service.yaml or milvus-server.yaml)" $name) }}
{{- end }}
{{- end }}
{{- if and .Values.ingress.enabled (eq .Values.service.type "ExternalName") }}
{{- fail "ingress needs service.type ClusterIP, NodePort or LoadBalancer" }}
{{- end }}
{{- end }}
