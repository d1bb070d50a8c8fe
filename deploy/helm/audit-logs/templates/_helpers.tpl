{{/* Names and labels. */}}
{{- define "audit-logs.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "audit-logs.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: audit-logs
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one service: (dict "root" $ "service" "gateway"). */}}
{{- define "audit-logs.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "audit-logs.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "audit-logs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "audit-logs.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A value from the existing Secret: (dict "root" $ "name" "ENV_NAME" "key" "secret-key" "optional" false). */}}
{{- define "audit-logs.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.secrets.existingSecret }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* A list of strings as a TOML inline array, e.g. ["a", "b"] (for list-valued env overrides). */}}
{{- define "audit-logs.tomlArray" -}}
[{{ range $i, $item := . }}{{ if $i }}, {{ end }}{{ $item | quote }}{{ end }}]
{{- end -}}

{{/* A string map as a TOML inline table, the form config overrides take for maps. */}}
{{- define "audit-logs.tomlTable" -}}
{{- $pairs := list -}}
{{- range $key, $value := . -}}
{{- $pairs = append $pairs (printf "%s=%s" ($key | quote) ($value | toString | quote)) -}}
{{- end -}}
{{- printf "{%s}" (join ", " $pairs) -}}
{{- end -}}

{{/*
The environment of one service: (dict "root" $ "service" "indexer"). Every setting that
differs between deployments is an override of the service's TOML config
(<SERVICE>__SECTION__KEY); secrets come from the existing Secret, never from values.
*/}}
{{- define "audit-logs.env" -}}
{{- $root := .root -}}
{{- $service := .service -}}
{{- $prefix := upper $service -}}
{{- $values := $root.Values -}}
- name: {{ $prefix }}_CONFIG
  value: /etc/audit-logs/{{ $service }}.toml
- name: {{ $prefix }}__KAFKA__BROKERS
  value: {{ $values.kafka.brokers | quote }}
{{- $principal := index (default dict $values.kafka.principals) $service | default dict }}
{{- $properties := merge (dict) ($values.kafka.properties | default dict) }}
{{- if $principal.username }}
{{- $_ := set $properties "sasl.username" $principal.username }}
{{- end }}
{{- with $properties }}
- name: {{ $prefix }}__KAFKA__PROPERTIES
  value: {{ include "audit-logs.tomlTable" . | quote }}
{{- end }}
{{- $passwordKey := default $values.kafka.saslPasswordKey $principal.passwordKey }}
{{- if $passwordKey }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" "KAFKA_SASL_PASSWORD" "key" $passwordKey) }}
- name: {{ $prefix }}__KAFKA__SECRET_PROPERTIES
  value: '{"sasl.password"="$(KAFKA_SASL_PASSWORD)"}'
{{- end }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" (printf "%s__TOPICS__INTEGRITY_KEY" $prefix) "key" $values.secrets.keys.integrityKey) }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" (printf "%s__TOPICS__SETTINGS_KEYS" $prefix) "key" $values.secrets.keys.settingsKeys) }}
- name: {{ $prefix }}__TOPICS__CREATE
  value: {{ $values.topics.create | quote }}
- name: {{ $prefix }}__TOPICS__EVENTS_PARTITIONS
  value: {{ $values.topics.eventsPartitions | quote }}
- name: {{ $prefix }}__TOPICS__REPLICATION_FACTOR
  value: {{ $values.topics.replicationFactor | quote }}
{{- if or (eq $service "gateway") (eq $service "indexer") }}
- name: {{ $prefix }}__CLICKHOUSE__URL
  value: {{ $values.clickhouse.url | quote }}
- name: {{ $prefix }}__CLICKHOUSE__DATABASE
  value: {{ $values.clickhouse.database | quote }}
{{- /* Both services need the layout: reads are routed to the owning shard on a cluster. */}}
- name: {{ $prefix }}__CLICKHOUSE__LAYOUT
  value: {{ $values.clickhouse.layout | quote }}
{{- if has $values.clickhouse.layout (list "replicated" "sharded") }}
- name: {{ $prefix }}__CLICKHOUSE__CLUSTER
  value: {{ required "clickhouse.cluster is required with layout replicated or sharded" $values.clickhouse.cluster | quote }}
{{- end }}
{{- if eq $values.clickhouse.layout "sharded" }}
{{- if not $values.clickhouse.shardUrls }}
{{- fail "clickhouse.shardUrls (one HTTP URL per shard) is required with layout sharded" }}
{{- end }}
- name: {{ $prefix }}__CLICKHOUSE__SHARD_URLS
  value: {{ include "audit-logs.tomlArray" $values.clickhouse.shardUrls | quote }}
{{- end }}
{{- end }}
{{- if eq $service "indexer" }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" "INDEXER__INTEGRITY__SIGNING_KEYS" "key" $values.secrets.keys.integritySigningKeys) }}
{{- end }}
{{- if eq $service "gateway" }}
{{- with $values.integrity.publicKeys }}
- name: GATEWAY__INTEGRITY__PUBLIC_KEYS
  value: {{ include "audit-logs.tomlArray" . | quote }}
{{- end }}
- name: GATEWAY__OPS__LISTEN
  value: {{ printf "0.0.0.0:%v" $values.gateway.opsPort | quote }}
- name: GATEWAY__AUTH__ISSUER
  value: {{ required "gateway.auth.issuer is required" $values.gateway.auth.issuer | quote }}
- name: GATEWAY__AUTH__AUDIENCE
  value: {{ required "gateway.auth.audience is required" $values.gateway.auth.audience | quote }}
- name: GATEWAY__CLICKHOUSE__USER
  value: {{ $values.clickhouse.readerUser | quote }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" "GATEWAY__CLICKHOUSE__PASSWORD" "key" $values.secrets.keys.clickhouseReaderPassword) }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" "GATEWAY__AUTH__HS256_SECRET" "key" $values.secrets.keys.authHs256Secret "optional" true) }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" "GATEWAY__OPERATORS__TOKENS" "key" $values.secrets.keys.operatorTokens) }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" "GATEWAY__ENCRYPTION__KEYS" "key" $values.secrets.keys.encryptionKeys) }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" "GATEWAY__READ__CURSOR_SECRET" "key" $values.secrets.keys.cursorSecret) }}
{{- end }}
{{- if eq $service "indexer" }}
- name: INDEXER__CLICKHOUSE__USER
  value: {{ $values.clickhouse.writerUser | quote }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" "INDEXER__CLICKHOUSE__PASSWORD" "key" $values.secrets.keys.clickhouseWriterPassword) }}
{{- end }}
{{- if eq $service "forwarder" }}
{{ include "audit-logs.secretEnv" (dict "root" $root "name" "FORWARDER__ENCRYPTION__KEYS" "key" $values.secrets.keys.encryptionKeys) }}
{{- end }}
{{- with (index $values $service).extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The config volume (the service's TOML and the catalogue) and a writable /tmp. */}}
{{- define "audit-logs.volumes" -}}
- name: config
  configMap:
    name: {{ include "audit-logs.fullname" .root }}{{ .suffix | default "" }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "audit-logs.volumeMounts" -}}
- name: config
  mountPath: /etc/audit-logs
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* The ConfigMap data: each service's TOML (values override or files/) and the catalogue. */}}
{{- define "audit-logs.configData" -}}
{{- range $service := list "gateway" "indexer" "forwarder" }}
{{ $service }}.toml: |-
{{- $custom := (index $.Values $service).config }}
{{ default ($.Files.Get (printf "files/%s.toml" $service)) $custom | trim | indent 2 }}
{{- end }}
catalogue.toml: |-
{{ $.Files.Get "files/catalogue.toml" | trim | indent 2 }}
{{- end -}}
