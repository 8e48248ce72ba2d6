{{/* Labels on every object: manifests/base's part-of label, plus Helm's own. */}}
{{- define "lazarus.labels" -}}
app.kubernetes.io/part-of: lazarus
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* repository@digest, else repository:tag (tag defaults to the chart's appVersion). */}}
{{- define "lazarus.imageRef" -}}
{{- $image := index . 0 -}}
{{- $default := index . 1 -}}
{{- if $image.digest -}}
{{ $image.repository }}@{{ $image.digest }}
{{- else -}}
{{ $image.repository }}:{{ $image.tag | default $default }}
{{- end -}}
{{- end }}

{{- define "lazarus.image" -}}
image: {{ include "lazarus.imageRef" (list .Values.image .Chart.AppVersion) | quote }}
{{- with .Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{- define "lazarus.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The agent's identity, as admission policies see it. */}}
{{- define "lazarus.agentUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:lazarus-agent
{{- end }}

{{/* The Secret the agent may read for pushing checkpoint images. */}}
{{- define "lazarus.pushSecretName" -}}
{{- .Values.registry.pushSecret.name | default "lazarus-registry-push" -}}
{{- end }}

{{/* The extender entry of a KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1). */}}
{{- define "lazarus.schedulerExtender" -}}
- urlPrefix: http://lazarus-extender.{{ .Release.Namespace }}.svc:8888
  filterVerb: filter
  prioritizeVerb: prioritize
  weight: 5
  # kube-scheduler sends node names only; the extender keeps its own node cache.
  nodeCacheCapable: true
  # If the extender is down, scheduling goes on without it (restored pods keep their
  # required node affinity on architecture and CRIU version from the webhook).
  ignorable: true
  httpTimeout: 2s
{{- end }}

{{/* The webhook's TLS Secret name is fixed: the webhook, the certs Job and RBAC name it. */}}
{{- define "lazarus.webhookDnsNames" -}}
- lazarus-webhook
- lazarus-webhook.{{ .Release.Namespace }}
- lazarus-webhook.{{ .Release.Namespace }}.svc
- lazarus-webhook.{{ .Release.Namespace }}.svc.cluster.local
{{- end }}

{{/*
certificates.mode=self-signed: the CA and serving certificate, generated once per render (every
template that needs them shares one, cached in .Values) and kept across upgrades: the Secret in
the cluster is reused unless certificates.selfSigned.renew is set.
*/}}
{{- define "lazarus.selfSignedCert" -}}
{{- if not (hasKey .Values "__lazarusSelfSigned") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace "lazarus-webhook-tls" -}}
{{- $data := dig "data" dict $existing -}}
{{- $cert := dict -}}
{{- if and $data (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") (not .Values.certificates.selfSigned.renew) -}}
{{- $cert = dict "ca" (index $data "ca.crt" | b64dec) "crt" (index $data "tls.crt" | b64dec) "key" (index $data "tls.key" | b64dec) -}}
{{- else -}}
{{- $days := int .Values.certificates.selfSigned.validityDays -}}
{{- $ca := genCA "lazarus-webhook-ca" $days -}}
{{- $dns := include "lazarus.webhookDnsNames" . | fromYamlArray -}}
{{- $leaf := genSignedCert (printf "lazarus-webhook.%s.svc" .Release.Namespace) nil $dns $days $ca -}}
{{- $cert = dict "ca" $ca.Cert "crt" $leaf.Cert "key" $leaf.Key -}}
{{- end -}}
{{- $_ := set .Values "__lazarusSelfSigned" $cert -}}
{{- end -}}
{{- toYaml (get .Values "__lazarusSelfSigned") -}}
{{- end }}

{{- define "lazarus.caBundle" -}}
{{- if eq .Values.certificates.mode "self-signed" -}}
caBundle: {{ (include "lazarus.selfSignedCert" . | fromYaml).ca | b64enc }}
{{- else -}}
# caBundle: injected by {{ ternary "cert-manager" "`lazarus certs` and kept current by the webhook itself" (eq .Values.certificates.mode "cert-manager") }}
{{- end -}}
{{- end }}

{{- define "lazarus.webhookConfigAnnotations" -}}
{{- if eq .Values.certificates.mode "cert-manager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/lazarus-webhook
{{- end -}}
{{- end }}
