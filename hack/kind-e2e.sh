#!/usr/bin/env bash
# hack/kind-e2e.sh (make kind-e2e): the e2e suite on kind, for machines with a
# Docker engine. It is the same suite that `make e2e` runs on the local
# cluster; only the cluster and the image loading differ.
#
# UNTESTED HERE: the machines this project is developed on have no Docker
# engine, so this path has not been run by us. The steps it shares with
# `make e2e` (the images' contents, the manifests, the suite) are tested.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

KIND_VERSION=${KIND_VERSION:-v0.33.0}
CLUSTER=${KIND_CLUSTER:-secretfetch-e2e}
kind() { if command -v kind >/dev/null; then command kind "$@"; else go run "sigs.k8s.io/kind@$KIND_VERSION" "$@"; fi; }

cleanup() { [ -n "${E2E_KEEP_CLUSTER:-}" ] || kind delete cluster --name "$CLUSTER"; }
trap cleanup EXIT

kind create cluster --name "$CLUSTER" --wait 120s
export KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config}

# Images: the Dockerfile's targets, tagged as the local overlay expects.
for target in webhook init-fetch fake-secretsmanager demo-app; do
  docker build --target "$target" -t "secretfetch.local/$target:dev" .
  kind load docker-image --name "$CLUSTER" "secretfetch.local/$target:dev"
done
# The reinvocation test's stand-in for the EKS pod identity webhook.
go run ./hack/images --out "$ROOT/.cache/kind-images" e2e-irsa-webhook
kind load image-archive --name "$CLUSTER" "$ROOT/.cache/kind-images/e2e-irsa-webhook.tar"

# etcd runs as a static pod inside the control-plane node container; the
# suite reads it through this wrapper.
etcdctl=$ROOT/.cache/kind-etcdctl
mkdir -p "$(dirname "$etcdctl")"
cat >"$etcdctl" <<WRAP
#!/usr/bin/env bash
node=$CLUSTER-control-plane
id=\$(docker exec "\$node" crictl ps --name etcd -q | head -1)
exec docker exec "\$node" crictl exec "\$id" etcdctl --cacert /etc/kubernetes/pki/etcd/ca.crt \\
  --cert /etc/kubernetes/pki/etcd/server.crt --key /etc/kubernetes/pki/etcd/server.key "\$@"
WRAP
chmod +x "$etcdctl"
export E2E_ETCDCTL=$etcdctl E2E_OVERLAY=manifests/overlays/kind
go test -tags e2e -count=1 -timeout 40m -v ./e2e/...
