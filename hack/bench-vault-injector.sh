#!/usr/bin/env bash
# hack/bench-vault-injector.sh: peak RSS of secretfetch's webhook against
# vault-k8s's own injector command (`vault-k8s agent-inject`, the binary its
# Makefile builds and its image runs), each as it runs in a pod: in-cluster
# credentials, talking to a real API server, under the same loads.
#
#   eval "$(hack/local-cluster env)"       # a cluster: make cluster-up
#   VAULT_K8S_DIR=/path/to/vault-k8s hack/bench-vault-injector.sh
#
# hack/bench-vault.sh serves vault-k8s's handler alone (hack/vault-bench),
# which measures the handler but leaves out what the injector process also
# carries: its client-go clientset and informer, its certificate notifier,
# its Vault API client, Prometheus. This script runs the real command, so
# that the peak RSS compares the two webhooks as they are deployed.
#
# Each server runs in a mount namespace of its own (unshare -m, so root),
# with a tmpfs over /run that holds what the kubelet would mount:
# /run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}, a token of a
# ServiceAccount of this script's namespace (created, and deleted at the
# end). Both get KUBERNETES_SERVICE_HOST and _PORT from the kubeconfig.
#
#   - secretfetch: cmd/webhook, as the Deployment runs it (GOMEMLIMIT=200MiB,
#     Go's default GOGC); it reads the API server's /version, which needs no
#     RBAC.
#   - vault-k8s: agent-inject with vault-helm's defaults for one replica
#     (no leader elector, telemetry at /metrics) and the certificate from
#     files (-tls-cert-file, -tls-key-file), which is how a cert-manager
#     install runs it; it watches MutatingWebhookConfigurations (RBAC
#     below) and reads the API groups.
#
# Environment: ROUNDS (2), RATES ("0 1000 2000"), CONNECTIONS (32),
# DURATION (10s), WARMUP (2s).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VAULT_K8S_DIR=${VAULT_K8S_DIR:-}
if [ -z "$VAULT_K8S_DIR" ] || [ ! -f "$VAULT_K8S_DIR/subcommand/injector/command.go" ]; then
  echo "bench-vault-injector: set VAULT_K8S_DIR to a checkout of github.com/hashicorp/vault-k8s, e.g. tag v1.7.6" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "bench-vault-injector: needs root, for unshare -m and the tmpfs over /run" >&2
  exit 2
fi
kubectl version >/dev/null 2>&1 || { echo "bench-vault-injector: no cluster at KUBECONFIG (make cluster-up; eval \"\$(hack/local-cluster env)\")" >&2; exit 2; }
VAULT_K8S_DIR=$(cd "$VAULT_K8S_DIR" && pwd)
ROUNDS=${ROUNDS:-2}
# shellcheck source=hack/lib/vault-bench.sh
. hack/lib/vault-bench.sh
NS=secretfetch-bench-vault

tmp=$(mktemp -d "${TMPDIR:-/tmp}/secretfetch-vault-injector.XXXXXX")
cleanup() {
  stop_server
  kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  kubectl delete clusterrolebinding,clusterrole "$NS" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building: cmd/webhook, hack/webhook-load, and vault-k8s at $VAULT_K8S_DIR ($(git -C "$VAULT_K8S_DIR" describe --tags 2>/dev/null || echo 'no git tag')), as its Makefile does"
build_common
(cd "$VAULT_K8S_DIR" && CGO_ENABLED=0 go build -o "$tmp/vault-k8s" .)

# The API server, as the kubelet would give it to a pod.
server=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
hostport=${server#https://}
api_host=${hostport%:*}
api_port=${hostport##*:}
ca_data=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
if [ -n "$ca_data" ]; then
  printf '%s' "$ca_data" | base64 -d >"$tmp/ca.crt"
else
  cp "$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')" "$tmp/ca.crt"
fi

kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: secretfetch, namespace: $NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: vault-injector, namespace: $NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $NS}
rules:
- apiGroups: [admissionregistration.k8s.io]
  resources: [mutatingwebhookconfigurations]
  verbs: [get, list, watch, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $NS}
subjects:
- {kind: ServiceAccount, name: vault-injector, namespace: $NS}
EOF

# in_pod SA CMD...: run CMD as a pod of ServiceAccount SA would run, in the
# background; server_pid is its pid (unshare and sh exec into it).
in_pod() {
  local sa=$1; shift
  kubectl -n "$NS" create token "$sa" --duration 1h >"$tmp/$sa.token"
  KUBERNETES_SERVICE_HOST=$api_host KUBERNETES_SERVICE_PORT=$api_port NAMESPACE=$NS \
    unshare -m sh -c '
      mount --make-rprivate / &&
      mount -t tmpfs -o size=1m,mode=0755 tmpfs /run &&
      mkdir -p /run/secrets/kubernetes.io/serviceaccount &&
      cp "$1" /run/secrets/kubernetes.io/serviceaccount/token &&
      cp "$2" /run/secrets/kubernetes.io/serviceaccount/ca.crt &&
      shift 2 && exec "$@"' sh "$tmp/$sa.token" "$tmp/ca.crt" "$@" &
  server_pid=$!
}

# idle_rss NAME: the RSS of the server in server_pid before any load.
idle_rss() { echo "[$1] idle RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$server_pid/status")"; }

echo "machine: $(nproc) CPUs, $(go env GOVERSION), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg); API server $(kubectl version -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | tail -1)"
echo "secretfetch: $(git rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'); vault-k8s binary: $(size "$tmp/vault-k8s" | awk 'NR==2 {printf "%.2f MB text", $1/1e6}'), ours $(size "$tmp/webhook" | awk 'NR==2 {printf "%.2f MB text", $1/1e6}')"
for i in $(seq "$ROUNDS"); do
  in_pod secretfetch env GOMEMLIMIT=200MiB "$tmp/webhook" \
    --cert-dir "$tmp/certs" --host 127.0.0.1 --port "$PORT" \
    --init-image=secretfetch.local/init-fetch:dev --default-region us-east-1 \
    --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$HEALTH_PORT" >"$tmp/secretfetch.log" 2>&1
  wait_ready "http://127.0.0.1:$HEALTH_PORT/readyz" secretfetch
  grep -q '"cluster features"' "$tmp/secretfetch.log" || { log "secretfetch did not read the API server's version:"; cat "$tmp/secretfetch.log" >&2; exit 1; }
  idle_rss "secretfetch $i"
  measure "secretfetch $i" "https://127.0.0.1:$PORT/mutate-v1-pod" hack/testdata/admissionreview.json

  in_pod vault-injector "$tmp/vault-k8s" agent-inject -listen "127.0.0.1:$VAULT_PORT" \
    -tls-cert-file "$tmp/certs/tls.crt" -tls-key-file "$tmp/certs/tls.key" \
    -vault-address https://vault.vault.svc:8200 -telemetry-path /metrics -log-level info >"$tmp/vault-k8s.log" 2>&1
  wait_ready "https://127.0.0.1:$VAULT_PORT/health/ready" vault-k8s --cacert "$tmp/certs/ca.crt"
  idle_rss "vault-k8s $i"
  measure "vault-k8s $i" "https://127.0.0.1:$VAULT_PORT/mutate" "$tmp/vault-review.json"
done
