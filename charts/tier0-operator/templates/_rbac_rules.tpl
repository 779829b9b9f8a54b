{{/*
The operator's rules are read from files/rbac/, byte-for-byte copies of operator/rbac/ (the rules the
operator's own control-plane tests run with; tests/charts/test_charts_static.py checks the copies,
`make charts-sync` refreshes them), so the chart grants exactly what was tested.
*/}}

{{/* Per watched namespace: RegionPairs and their status, the Services whose selector it flips, the
Secrets a pair names (get/patch by name: never list/watch), Events. */}}
{{- define "tier0-operator.namespacedRules" -}}
{{- (.Files.Get "files/rbac/role.yaml" | fromYaml).rules | toYaml }}
{{- end }}

{{/* The watched namespaces as a JSON list; fails with the fix when there is none and clusterWide is off. */}}
{{- define "tier0-operator.watchNamespaces" -}}
{{- if and (not .Values.clusterWide) (not .Values.watchNamespaces) }}
{{- fail "watchNamespaces is empty: name the namespaces whose RegionPairs the operator manages, or set clusterWide: true to grant it every namespace" }}
{{- end }}
{{- toJson (.Values.watchNamespaces | default list) }}
{{- end }}

{{/* The Lease that elects the one acting replica (first document of leader-election.yaml: the Role). */}}
{{- define "tier0-operator.leaseRules" -}}
{{- $role := .Files.Get "files/rbac/leader-election.yaml" | splitList "\n---" | first | fromYaml }}
{{- $role.rules | toYaml }}
{{- end }}
