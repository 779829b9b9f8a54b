{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "tier0.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, unless it already contains the chart name. */}}
{{- define "tier0.fullname" -}}
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

{{- define "tier0.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component, optionally of one region.
Usage: include "tier0.selectorLabels" (dict "ctx" $ "component" "region-api" "region" "region1")
*/}}
{{- define "tier0.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tier0.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .region }}
tier0.dev/region: {{ . }}
{{- end }}
{{- end }}

{{/* Labels on every object (same arguments as tier0.selectorLabels). */}}
{{- define "tier0.labels" -}}
helm.sh/chart: {{ include "tier0.chart" .ctx }}
{{ include "tier0.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: tier0
{{- end }}

{{/* "<fullname>-<suffix>", kept to 63 characters. Usage: include "tier0.name.of" (list $ "redis-region1") */}}
{{- define "tier0.name.of" -}}
{{- printf "%s-%s" (include "tier0.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* image reference for one of tier0's images. Usage: include "tier0.image" (list $ .Values.images.services) */}}
{{- define "tier0.image" -}}
{{- $img := index . 1 }}
{{- printf "%s:%s" $img.repository ($img.tag | default (index . 0).Chart.AppVersion) }}
{{- end }}

{{- define "tier0.globalServiceName" -}}
{{- .Values.regionApi.globalService.name | default (include "tier0.name.of" (list . "region-api")) }}
{{- end }}

{{- define "tier0.regionPairName" -}}
{{- .Values.regionPair.name | default (include "tier0.fullname" .) }}
{{- end }}

{{- define "tier0.redisHost" -}}
{{- include "tier0.name.of" (list .ctx (printf "redis-%s" .region)) }}
{{- end }}

{{/*
Redis memory options: `--maxmemory` (redis.maxmemory, else redis.maxmemoryPercent of
redis.resources.limits.memory, in bytes) and `--maxmemory-policy`. Which keys a policy may evict:
the data classes in services/tier0_contract/keys.py.
*/}}
{{- define "tier0.redisMemoryArgs" -}}
{{- $v := .Values.redis }}
{{- $bytes := $v.maxmemory }}
{{- if not $bytes }}
{{- $limit := toString (dig "limits" "memory" "" $v.resources) }}
{{- if not $limit }}{{ fail "redis.maxmemory, or redis.resources.limits.memory to derive it from, must be set" }}{{ end }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $limit }}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- $unit := trimPrefix $number $limit }}
{{- if or (not $number) (not (hasKey $units $unit)) }}{{ fail (printf "redis.resources.limits.memory %q: a number with an optional k/M/G/T or Ki/Mi/Gi/Ti suffix is needed to derive maxmemory" $limit) }}{{ end }}
{{- $bytes = mulf $number (get $units $unit) $v.maxmemoryPercent 0.01 | floor | int64 | toString }}
{{- end }}
{{- printf "--maxmemory %s --maxmemory-policy %s" $bytes $v.maxmemoryPolicy }}
{{- end }}

{{- define "tier0.emqxHost" -}}{{ include "tier0.name.of" (list . "emqx") }}{{- end }}
{{- define "tier0.rabbitmqHost" -}}{{ include "tier0.name.of" (list . "rabbitmq") }}{{- end }}

{{/* Secret names: the user's existing Secret, or the chart's. */}}
{{- define "tier0.redisSecret" -}}{{ .Values.redis.auth.existingSecret | default (include "tier0.name.of" (list . "redis")) }}{{- end }}
{{- define "tier0.apiSecret" -}}{{ .Values.regionApi.auth.existingSecret | default (include "tier0.name.of" (list . "api")) }}{{- end }}
{{- define "tier0.rabbitmqSecret" -}}{{ .Values.rabbitmq.auth.existingSecret | default (include "tier0.name.of" (list . "rabbitmq")) }}{{- end }}
{{- define "tier0.emqxSecret" -}}{{ .Values.emqx.auth.existingSecret | default (include "tier0.name.of" (list . "emqx")) }}{{- end }}


{{/* Environment shared by tier0 containers that talk to a region's Redis (REDIS_PASSWORD first: later values expand it). */}}
{{- define "tier0.redisEnv" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "tier0.redisSecret" .ctx }}
      key: password
- name: TIER0_REGION
  value: {{ .region | quote }}
- name: TIER0_REDIS_URL
  value: "redis://:$(REDIS_PASSWORD)@{{ include "tier0.redisHost" . }}:{{ .ctx.Values.redis.port }}/0"
{{- end }}

{{- define "tier0.rabbitmqEnv" -}}
- name: RABBITMQ_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "tier0.rabbitmqSecret" . }}
      key: username
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "tier0.rabbitmqSecret" . }}
      key: password
- name: TIER0_AMQP_URL
  value: "amqp://$(RABBITMQ_USERNAME):$(RABBITMQ_PASSWORD)@{{ include "tier0.rabbitmqHost" . }}:{{ .Values.rabbitmq.amqpPort }}/%2F"
{{- end }}

{{- define "tier0.mqttEnv" -}}
- name: TIER0_MQTT_HOST
  value: {{ include "tier0.emqxHost" . | quote }}
- name: TIER0_MQTT_PORT
  value: {{ .Values.emqx.mqttPort | quote }}
{{- end }}

{{/* The pod-level pieces every tier0-image pod shares. */}}
{{- define "tier0.podCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A writable /tmp for containers with a read-only root filesystem. */}}
{{- define "tier0.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* The region names as a JSON list (TIER0_REGIONS). */}}
{{- define "tier0.regionNames" -}}
{{- $names := list }}
{{- range .Values.regions }}{{ $names = append $names .name }}{{ end }}
{{- toJson $names }}
{{- end }}

{{/* RabbitMQ's plugins and configuration (ConfigMap data; its checksum rolls the pod). */}}
{{- define "tier0.rabbitmqConfig" -}}
enabled_plugins: |
  [rabbitmq_management,rabbitmq_prometheus].
10-tier0.conf: |
  listeners.tcp.default = {{ .Values.rabbitmq.amqpPort }}
  management.tcp.port = {{ .Values.rabbitmq.managementPort }}
  prometheus.tcp.port = {{ .Values.rabbitmq.prometheusPort }}
  # Aggregated metrics on /metrics; per-queue ones on /metrics/per-object.
  prometheus.return_per_object_metrics = false
{{- end }}

{{/* NetworkPolicy peer: the release's pods of one component. */}}
{{- define "tier0.peer" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/instance: {{ .ctx.Release.Name }}
      app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* NetworkPolicy rule for a metrics port: networkPolicy.metricsFrom, or anyone when empty. */}}
{{- define "tier0.metricsRule" -}}
- ports:
    - port: {{ .port }}
      protocol: TCP
  {{- with .ctx.Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
