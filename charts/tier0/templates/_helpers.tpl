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
the data classes in contract/tier0_contract/keys.py.
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

{{/*
Broker names. With brokers.perRegion each region has its own EMQX and RabbitMQ (`<fullname>-emqx-<region>`,
`<fullname>-rabbitmq-<region>`: a region's workers use these) and publishers connect to the global
Services that follow the active region (`<fullname>-mqtt`, `<fullname>-amqp`); without it one shared
broker of each kind (`<fullname>-emqx`, `<fullname>-rabbitmq`) serves everyone.
Usage: include "tier0.emqxHost" (dict "ctx" $ "region" "region1"); no region: the shared broker.
*/}}
{{- define "tier0.emqxHost" -}}
{{- if and .ctx.Values.brokers.perRegion .region }}{{ include "tier0.name.of" (list .ctx (printf "emqx-%s" .region)) }}
{{- else }}{{ include "tier0.name.of" (list .ctx "emqx") }}{{ end }}
{{- end }}
{{- define "tier0.rabbitmqHost" -}}
{{- if and .ctx.Values.brokers.perRegion .region }}{{ include "tier0.name.of" (list .ctx (printf "rabbitmq-%s" .region)) }}
{{- else }}{{ include "tier0.name.of" (list .ctx "rabbitmq") }}{{ end }}
{{- end }}
{{- define "tier0.mqttServiceName" -}}
{{- .Values.emqx.globalService.name | default (include "tier0.name.of" (list . "mqtt")) }}
{{- end }}
{{- define "tier0.amqpServiceName" -}}
{{- .Values.rabbitmq.globalService.name | default (include "tier0.name.of" (list . "amqp")) }}
{{- end }}
{{/* Where publishers (devices, the simulators) connect: the global Service, or the shared broker. */}}
{{- define "tier0.mqttPublishHost" -}}
{{- if .Values.brokers.perRegion }}{{ include "tier0.mqttServiceName" . }}{{ else }}{{ include "tier0.emqxHost" (dict "ctx" .) }}{{ end }}
{{- end }}
{{- define "tier0.amqpPublishHost" -}}
{{- if .Values.brokers.perRegion }}{{ include "tier0.amqpServiceName" . }}{{ else }}{{ include "tier0.rabbitmqHost" (dict "ctx" .) }}{{ end }}
{{- end }}
{{/* The broker instances of one kind: each region (brokers.perRegion), or one shared (no name). */}}
{{- define "tier0.brokerRegions" -}}
{{- if .Values.brokers.perRegion }}{{ toJson .Values.regions }}{{ else }}[{}]{{ end }}
{{- end }}

{{/*
Where a pod of one region runs (pod spec fields): the region's nodeSelector and tolerations; its
affinity, plus the `zone` shortcut (each required node selector term, or a new one, also requires
topology.kubernetes.io/zone) and, with `antiAffinity` required or preferred, a pod anti-affinity on
kubernetes.io/hostname to every pod of the same component of the release (the other region's Redis,
the other region's broker of the same kind); its topologySpreadConstraints, each without a
labelSelector given the workload's own labels. Nothing is changed in .Values (deep copies).
Usage: include "tier0.placement" (dict "ctx" $ "region" $r "component" "redis" "antiAffinity" "required")
*/}}
{{- define "tier0.placement" -}}
{{- $r := .region | default dict }}
{{- $own := include "tier0.selectorLabels" (dict "ctx" .ctx "component" .component "region" $r.name) | fromYaml }}
{{- with $r.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := deepCopy ($r.affinity | default dict) }}
{{- with $r.zone }}
{{- $zone := dict "key" "topology.kubernetes.io/zone" "operator" "In" "values" (list .) }}
{{- $node := $affinity.nodeAffinity | default dict }}
{{- $required := $node.requiredDuringSchedulingIgnoredDuringExecution | default dict }}
{{- $terms := list }}
{{- range ($required.nodeSelectorTerms | default (list dict)) }}
{{- $terms = append $terms (set . "matchExpressions" (append (.matchExpressions | default list) $zone)) }}
{{- end }}
{{- $_ := set $required "nodeSelectorTerms" $terms }}
{{- $_ = set $node "requiredDuringSchedulingIgnoredDuringExecution" $required }}
{{- $_ = set $affinity "nodeAffinity" $node }}
{{- end }}
{{- if has .antiAffinity (list "required" "preferred") }}
{{- $term := dict "labelSelector" (dict "matchLabels" (omit $own "tier0.dev/region")) "topologyKey" "kubernetes.io/hostname" }}
{{- $anti := $affinity.podAntiAffinity | default dict }}
{{- if eq .antiAffinity "required" }}
{{- $_ := set $anti "requiredDuringSchedulingIgnoredDuringExecution" (append ($anti.requiredDuringSchedulingIgnoredDuringExecution | default list) $term) }}
{{- else }}
{{- $_ := set $anti "preferredDuringSchedulingIgnoredDuringExecution" (append ($anti.preferredDuringSchedulingIgnoredDuringExecution | default list) (dict "weight" 100 "podAffinityTerm" $term)) }}
{{- end }}
{{- $_ := set $affinity "podAntiAffinity" $anti }}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $r.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $r.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  {{- $c := deepCopy . }}
  {{- if not $c.labelSelector }}{{ $_ := set $c "labelSelector" (dict "matchLabels" $own) }}{{ end }}
  - {{- toYaml $c | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
The Secrets this chart renders for the operator to fill (annotated tier0.dev/generate), as a JSON
list: the RegionPair names them in spec.generatedSecrets, and the operator reads exactly those, by
name (it may not list Secrets). Read from secrets.yaml itself, so a Secret added there is listed
without another edit.
*/}}
{{- define "tier0.generatedSecrets" -}}
{{- $names := list }}
{{- range (include (print .Template.BasePath "/secrets.yaml") . | splitList "\n---") }}
{{- $doc := fromYaml . }}
{{- if and $doc (eq ($doc.kind | default "") "Secret") }}
{{- if hasKey ($doc.metadata.annotations | default dict) "tier0.dev/generate" }}
{{- $names = append $names $doc.metadata.name }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* Secret names: the user's existing Secret, or the chart's. */}}
{{- define "tier0.redisSecret" -}}{{ .Values.redis.auth.existingSecret | default (include "tier0.name.of" (list . "redis")) }}{{- end }}
{{- define "tier0.apiSecret" -}}{{ .Values.regionApi.auth.existingSecret | default (include "tier0.name.of" (list . "api")) }}{{- end }}
{{- define "tier0.rabbitmqSecret" -}}{{ .Values.rabbitmq.auth.existingSecret | default (include "tier0.name.of" (list . "rabbitmq")) }}{{- end }}
{{- define "tier0.emqxSecret" -}}{{ .Values.emqx.auth.existingSecret | default (include "tier0.name.of" (list . "emqx")) }}{{- end }}
{{- define "tier0.mqttSecret" -}}{{ .Values.emqx.clientAuth.existingSecret | default (include "tier0.name.of" (list . "mqtt")) }}{{- end }}

{{/*
Users, as services/tier0_services/access/{redis,mqtt,rabbitmq}.py name them (a unit test holds the two
spellings together), and where a container finds its password: a Secret volume holding only its key.
*/}}
{{- define "tier0.redisAppUser" -}}tier0-app{{- end }}
{{- define "tier0.redisOperatorUser" -}}tier0-operator{{- end }}
{{- define "tier0.redisExporterUser" -}}tier0-exporter{{- end }}
{{- define "tier0.amqpAppUser" -}}tier0-app{{- end }}
{{- define "tier0.amqpVhost" -}}tier0{{- end }}
{{- define "tier0.secretsDir" -}}/var/run/secrets/tier0{{- end }}

{{/* Fail rendering when a TLS option is on without its Secret. Usage: include "tier0.tlsCheck" (list "redis" .Values.redis.tls) */}}
{{- define "tier0.tlsCheck" -}}
{{- $tls := index . 1 }}
{{- if and $tls.enabled (not $tls.existingSecret) }}
{{- fail (printf "%s.tls.enabled needs %s.tls.existingSecret (a Secret with tls.crt, tls.key, ca.crt)" (index . 0) (index . 0)) }}
{{- end }}
{{- end }}

{{/* A volume with one key of a Secret. Usage: include "tier0.keyVolume" (dict "name" "redis-password" "secret" $name "key" "app-password") */}}
{{- define "tier0.keyVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ .secret }}
    defaultMode: 0440
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}

{{/* A user-provided TLS Secret's CA bundle (ca.crt) as a volume. Usage: include "tier0.caVolume" (dict "name" "redis-ca" "secret" $s) */}}
{{- define "tier0.caVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ .secret }}
    defaultMode: 0444
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}

{{- define "tier0.redisScheme" -}}{{ if .Values.redis.tls.enabled }}rediss{{ else }}redis{{ end }}{{- end }}

{{/* Environment of tier0 containers that talk to a region's Redis: the URL carries no password, the
password is a mounted file (tier0.redisVolumes / tier0.redisMounts). */}}
{{- define "tier0.redisEnv" -}}
- name: TIER0_REGION
  value: {{ .region | quote }}
- name: TIER0_REDIS_URL
  value: "{{ include "tier0.redisScheme" .ctx }}://{{ include "tier0.redisHost" . }}:{{ .ctx.Values.redis.port }}/0"
- name: TIER0_REDIS_USERNAME
  value: {{ include "tier0.redisAppUser" .ctx }}
- name: TIER0_REDIS_PASSWORD_FILE
  value: {{ include "tier0.secretsDir" .ctx }}/redis/app-password
{{- if .ctx.Values.redis.tls.enabled }}
- name: TIER0_REDIS_TLS_CA_FILE
  value: {{ include "tier0.secretsDir" .ctx }}/redis-tls/ca.crt
{{- end }}
{{- end }}

{{- define "tier0.redisVolumes" -}}
{{- include "tier0.keyVolume" (dict "name" "redis-password" "secret" (include "tier0.redisSecret" .) "key" "app-password") }}
{{- if .Values.redis.tls.enabled }}
{{ include "tier0.caVolume" (dict "name" "redis-tls" "secret" .Values.redis.tls.existingSecret) }}
{{- end }}
{{- end }}

{{- define "tier0.redisMounts" -}}
- name: redis-password
  mountPath: {{ include "tier0.secretsDir" . }}/redis
  readOnly: true
{{- if .Values.redis.tls.enabled }}
- name: redis-tls
  mountPath: {{ include "tier0.secretsDir" . }}/redis-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* AMQP: the activity vhost as the application user, on `host` (a broker or the global Service).
Usage: include "tier0.rabbitmqEnv" (dict "ctx" $ "host" "<release>-amqp") */}}
{{- define "tier0.rabbitmqEnv" -}}
- name: TIER0_AMQP_URL
  value: "{{ if .ctx.Values.rabbitmq.tls.enabled }}amqps{{ else }}amqp{{ end }}://{{ .host }}:{{ .ctx.Values.rabbitmq.amqpPort }}/{{ include "tier0.amqpVhost" .ctx }}"
- name: TIER0_AMQP_USERNAME
  value: {{ include "tier0.amqpAppUser" .ctx }}
- name: TIER0_AMQP_PASSWORD_FILE
  value: {{ include "tier0.secretsDir" .ctx }}/amqp/app-password
{{- if .ctx.Values.rabbitmq.tls.enabled }}
- name: TIER0_AMQP_TLS_CA_FILE
  value: {{ include "tier0.secretsDir" .ctx }}/amqp-tls/ca.crt
{{- end }}
{{- end }}

{{- define "tier0.rabbitmqVolumes" -}}
{{- include "tier0.keyVolume" (dict "name" "amqp-password" "secret" (include "tier0.rabbitmqSecret" .) "key" "app-password") }}
{{- if .Values.rabbitmq.tls.enabled }}
{{ include "tier0.caVolume" (dict "name" "amqp-tls" "secret" .Values.rabbitmq.tls.existingSecret) }}
{{- end }}
{{- end }}

{{- define "tier0.rabbitmqMounts" -}}
- name: amqp-password
  mountPath: {{ include "tier0.secretsDir" . }}/amqp
  readOnly: true
{{- if .Values.rabbitmq.tls.enabled }}
- name: amqp-tls
  mountPath: {{ include "tier0.secretsDir" . }}/amqp-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* MQTT as one of the users of files/emqx/acl.conf, on `host` (a broker or the global Service).
Usage: include "tier0.mqttEnv" (dict "ctx" $ "host" "<release>-emqx-region1" "user" "tier0-ingest" "key" "ingest-password") */}}
{{- define "tier0.mqttEnv" -}}
- name: TIER0_MQTT_HOST
  value: {{ .host | quote }}
- name: TIER0_MQTT_PORT
  value: {{ .ctx.Values.emqx.mqttPort | quote }}
- name: TIER0_MQTT_USERNAME
  value: {{ .user }}
- name: TIER0_MQTT_PASSWORD_FILE
  value: {{ include "tier0.secretsDir" .ctx }}/mqtt/{{ .key }}
{{- if .ctx.Values.emqx.tls.enabled }}
- name: TIER0_MQTT_TLS_CA_FILE
  value: {{ include "tier0.secretsDir" .ctx }}/mqtt-tls/ca.crt
{{- end }}
{{- end }}

{{- define "tier0.mqttVolumes" -}}
{{- include "tier0.keyVolume" (dict "name" "mqtt-password" "secret" (include "tier0.mqttSecret" .ctx) "key" .key) }}
{{- if .ctx.Values.emqx.tls.enabled }}
{{ include "tier0.caVolume" (dict "name" "mqtt-tls" "secret" .ctx.Values.emqx.tls.existingSecret) }}
{{- end }}
{{- end }}

{{- define "tier0.mqttMounts" -}}
- name: mqtt-password
  mountPath: {{ include "tier0.secretsDir" . }}/mqtt
  readOnly: true
{{- if .Values.emqx.tls.enabled }}
- name: mqtt-tls
  mountPath: {{ include "tier0.secretsDir" . }}/mqtt-tls
  readOnly: true
{{- end }}
{{- end }}

{{/*
An init container that renders a server's users and permissions from its mounted Secret into a
memory-backed volume (python -m tier0_services.access, from tier0's services image: the servers'
own images only read files). Usage: include "tier0.accessInit" (dict "ctx" $ "server" "redis"
"secrets" "/path" "out" "/path" "mounts" (list ...) "extra" (list ...) "securityContext" ...)
*/}}
{{- define "tier0.accessInit" -}}
- name: access
  image: {{ include "tier0.image" (list .ctx .ctx.Values.images.services) }}
  imagePullPolicy: {{ .ctx.Values.images.services.pullPolicy }}
  args: [tier0_services.access, {{ .server }}, --secrets, {{ .secrets }}, --out, {{ .out }}{{ range .extra }}, {{ . | quote }}{{ end }}]
  securityContext:
    {{- toYaml .securityContext | nindent 4 }}
  resources:
    requests:
      cpu: 10m
      memory: 32Mi
      ephemeral-storage: 16Mi
    limits:
      memory: 128Mi
      ephemeral-storage: 64Mi
  volumeMounts:
    {{- toYaml .mounts | nindent 4 }}
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
  {{- if .Values.rabbitmq.tls.enabled }}
  listeners.tcp = none
  listeners.ssl.default = {{ .Values.rabbitmq.amqpPort }}
  ssl_options.cacertfile = /etc/rabbitmq/tls/ca.crt
  ssl_options.certfile = /etc/rabbitmq/tls/tls.crt
  ssl_options.keyfile = /etc/rabbitmq/tls/tls.key
  ssl_options.verify = verify_none
  ssl_options.fail_if_no_peer_cert = false
  {{- else }}
  listeners.tcp.default = {{ .Values.rabbitmq.amqpPort }}
  {{- end }}
  # Users, vhost and permissions (tier0_services.access.rabbitmq), rendered from the Secret at each
  # start by the init container; with definitions to import, RabbitMQ creates no default (guest) user.
  load_definitions = /etc/rabbitmq/definitions/definitions.json
  management.tcp.port = {{ .Values.rabbitmq.managementPort }}
  prometheus.tcp.port = {{ .Values.rabbitmq.prometheusPort }}
  # Aggregated metrics on /metrics; per-queue ones on /metrics/per-object.
  prometheus.return_per_object_metrics = false
{{- end }}

{{/* NetworkPolicy peer: the release's pods of one component (of one region, with `region`). */}}
{{- define "tier0.peer" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/instance: {{ .ctx.Release.Name }}
      app.kubernetes.io/component: {{ .component }}
      {{- with .region }}
      tier0.dev/region: {{ . }}
      {{- end }}
{{- end }}

{{/* NetworkPolicy rule for a metrics port: networkPolicy.metricsFrom (and `also`); none when both are
empty, so the port is open to no one. Usage: include "tier0.metricsRule" (dict "ctx" $ "port" 9121 "also" (list ...)) */}}
{{- define "tier0.metricsRule" -}}
{{- $from := concat .ctx.Values.networkPolicy.metricsFrom (.also | default list) }}
{{- if $from -}}
- ports:
    - port: {{ .port }}
      protocol: TCP
  from:
    {{- toYaml $from | nindent 4 }}
{{- end }}
{{- end }}
