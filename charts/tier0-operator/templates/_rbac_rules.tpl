{{/*
The operator's rules are read from files/rbac/, byte-for-byte copies of operator/rbac/ (the rules the
operator's own control-plane tests run with; tests/unit/test_charts_static.py checks the copies,
`make charts-sync` refreshes them), so the chart grants exactly what was tested.
*/}}

{{/* Namespaced: RegionPairs and their status, the Services whose selector it flips, Redis passwords, Events. */}}
{{- define "tier0-operator.namespacedRules" -}}
{{- (.Files.Get "files/rbac/clusterrole.yaml" | fromYaml).rules | toYaml }}
{{- end }}

{{/* The Lease that elects the one acting replica (first document of leader-election.yaml: the Role). */}}
{{- define "tier0-operator.leaseRules" -}}
{{- $role := .Files.Get "files/rbac/leader-election.yaml" | splitList "\n---" | first | fromYaml }}
{{- $role.rules | toYaml }}
{{- end }}
