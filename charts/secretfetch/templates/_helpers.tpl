{{/*
The names match manifests/base, so that the chart and the kustomize base
describe the same objects (charts/chart_test.go keeps them equal).
*/}}
{{- define "secretfetch.name" -}}secretfetch-webhook{{- end -}}

{{- define "secretfetch.serviceDNS" -}}
{{ include "secretfetch.name" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{- define "secretfetch.tlsSecret" -}}
{{ .Values.tls.existingSecret | default "secretfetch-webhook-tls" }}
{{- end -}}

{{/*
The labels on every object: kustomize's part-of label of the base, and Helm's
own. The one-truth test ignores exactly the Helm ones.
*/}}
{{- define "secretfetch.labels" -}}
app.kubernetes.io/part-of: secretfetch
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* image renders repository:tag or repository@digest; the tag defaults to the chart's appVersion. */}}
{{- define "secretfetch.image" -}}
{{- $img := index . 0 -}}{{- $root := index . 1 -}}
{{- if $img.digest -}}
{{ $img.repository }}@{{ $img.digest }}
{{- else -}}
{{ $img.repository }}:{{ $img.tag | default $root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/*
The webhook's settings, as the base's ConfigMap carries them, in the order of
the base's args and env: [ConfigMap key, flag, value]. Each one is a literal
in the ConfigMap, an env var read from it, and a --flag=$(KEY) arg, so adding
a setting is one line here.
*/}}
{{- define "secretfetch.settings" -}}
{{- $c := .Values.config -}}
{{- list
  (list "INIT_IMAGE" "init-image" (include "secretfetch.image" (list .Values.initImage .)))
  (list "DEFAULT_REGION" "default-region" ($c.defaultRegion | toString))
  (list "DEFAULT_FAILOVER_REGION" "default-failover-region" ($c.defaultFailoverRegion | toString))
  (list "SECRETSMANAGER_ENDPOINT" "secretsmanager-endpoint" ($c.secretsManagerEndpoint | toString))
  (list "STS_ENDPOINT" "sts-endpoint" ($c.stsEndpoint | toString))
  (list "FAILOVER_SECRETSMANAGER_ENDPOINT" "failover-secretsmanager-endpoint" ($c.failoverSecretsManagerEndpoint | toString))
  (list "FAILOVER_STS_ENDPOINT" "failover-sts-endpoint" ($c.failoverSTSEndpoint | toString))
  (list "VOLUME_SIZE_LIMIT" "volume-size-limit" ($c.volumeSizeLimit | toString))
  (list "INIT_RESOURCES" "init-resources" (ternary "" ($c.initResources | toJson) (empty $c.initResources)))
  (list "MIN_REFRESH_INTERVAL" "min-refresh-interval" ($c.minRefreshInterval | toString))
  (list "ENV_FILES" "env-files" ($c.envFiles | toString))
  (list "REFRESH_RESTART" "refresh-restart" ($c.refreshRestart | toString))
  (list "REFRESH_RESTART_WINDOW" "refresh-restart-window" ($c.refreshRestartWindow | toString))
  (list "REFRESH_RESTART_SPACING" "refresh-restart-spacing" ($c.refreshRestartSpacing | toString))
| toJson -}}
{{- end -}}

{{- define "secretfetch.configData" -}}
{{- $d := dict -}}
{{- range include "secretfetch.settings" . | fromJsonArray -}}
{{- $_ := set $d (index . 0) (index . 2) -}}
{{- end -}}
{{- toJson $d -}}
{{- end -}}

{{/*
The ConfigMap's name carries kustomize's hash of its content, computed as
kustomize's configMapGenerator does (sigs.k8s.io/kustomize/api/hasher): the
sha256 of {"data":...,"kind":"ConfigMap","name":""} as sorted JSON (kustomize
looks the name up under one key, "metadata/name", finds nothing and hashes ""),
its first 10 hex digits with 0,1,3,a,e swapped for g,h,k,m,t. A changed setting
renames the ConfigMap and so rolls the Deployment, in the chart as in
kustomize, and the default render keeps the base's very name (the one-truth
test in charts/ fails if kustomize ever changes this).
*/}}
{{- define "secretfetch.configName" -}}
{{- $enc := dict "data" (include "secretfetch.configData" . | fromJson) "kind" "ConfigMap" "name" "" | toJson -}}
{{- $hex := sha256sum $enc | trunc 10 -}}
{{- $hash := "" -}}
{{- range $c := splitList "" $hex -}}
{{- $hash = print $hash (get (dict "0" "g" "1" "h" "3" "k" "a" "m" "e" "t") $c | default $c) -}}
{{- end -}}
secretfetch-webhook-config-{{ $hash }}
{{- end -}}

{{/*
The settings of secretfetch.settings that mode: policy carries in
secretfetch-policy-params, under the same keys, for the
MutatingAdmissionPolicy and secretfetch-policy-checks (as
manifests/overlays/policy lists them).
*/}}
{{- define "secretfetch.policySettings" -}}
{{- list "DEFAULT_REGION" "DEFAULT_FAILOVER_REGION" "SECRETSMANAGER_ENDPOINT" "STS_ENDPOINT" "VOLUME_SIZE_LIMIT" "MIN_REFRESH_INTERVAL" "REFRESH_RESTART_WINDOW" "REFRESH_RESTART_SPACING" | toJson -}}
{{- end -}}

{{/*
mode: policy refuses what it cannot honour rather than ignore it: a cluster
without MutatingAdmissionPolicy (GA in 1.36), and the injection settings that
only the webhook reads. (The webhook server's own values, such as
replicaCount or tls, are simply not rendered.)
*/}}
{{- define "secretfetch.checkPolicyMode" -}}
{{- if not (semverCompare ">=1.36.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "mode: policy needs Kubernetes 1.36 or later, where MutatingAdmissionPolicy is GA (admissionregistration.k8s.io/v1); this cluster is %s: use mode: webhook" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- $c := .Values.config }}
{{- if not (empty $c.initResources) }}
{{- fail "config.initResources: not supported with mode: policy, whose MutatingAdmissionPolicy injects fixed requests and limits (requests cpu 10m, memory 16Mi; limits cpu 500m, memory 64Mi plus the volume); leave it empty ({}) or use mode: webhook" }}
{{- end }}
{{- if or $c.failoverSecretsManagerEndpoint $c.failoverSTSEndpoint }}
{{- fail "config.failoverSecretsManagerEndpoint and config.failoverSTSEndpoint: not supported with mode: policy, whose init container reaches the failover region through the AWS SDK's own endpoints; leave them empty or use mode: webhook" }}
{{- end }}
{{- if ne ($c.envFiles | toString) "true" }}
{{- fail "config.envFiles: false is not supported with mode: policy, whose policies have no switch that denies secretfetch.io/env-<name> (Kubernetes 1.36 has EnvFiles); set it to true or use mode: webhook" }}
{{- end }}
{{- if ne ($c.refreshRestart | toString) "auto" }}
{{- fail "config.refreshRestart: false is not supported with mode: policy, whose policies have no switch that denies secretfetch.io/refresh-restart; set it to auto or use mode: webhook" }}
{{- end }}
{{- end -}}
