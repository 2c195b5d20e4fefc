#!/usr/bin/env bash
# hack/kind-e2e.sh (make kind-e2e): the e2e suite on kind. It is the same
# suite that `make e2e` runs on the local cluster; only the cluster and the
# way images reach it differ. Two paths:
#
#   make kind-e2e                              a Docker engine and a registry:
#                                              kind's own node image
#   SECRETFETCH_KIND_OFFLINE=1 make kind-e2e   no registry (CI, this machine):
#                                              hack/kind-offline builds and caches
#                                              the node image, runs its own
#                                              dockerd, and stops it again
#
# On both, our images come from hack/images (no Docker build, no registry)
# and reach the node by `kind load image-archive`. The cluster is deleted at
# the end, even on failure, unless E2E_KEEP_CLUSTER is set.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

KIND_VERSION=${KIND_VERSION:-v0.33.0}
export KIND_VERSION
CLUSTER=${KIND_CLUSTER:-secretfetch-e2e}
OFFLINE=${SECRETFETCH_KIND_OFFLINE:-}
IMAGES=$ROOT/.cache/kind-images

log() { printf '%s [kind-e2e] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

start=$SECONDS
# kind's nodes share this machine's kernel: give it the link protections of
# users' nodes (hack/node-sysctls), where we may.
SYSCTLS_SAVED=$ROOT/.cache/kind-host-sysctls
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$ROOT/.cache"
  "$ROOT/hack/node-sysctls" set "$SYSCTLS_SAVED"
else
  log "not root: the suite assumes fs.protected_symlinks=1, as on users' nodes; it is $(sysctl -n fs.protected_symlinks 2>/dev/null || echo unknown) here"
fi
if [ -n "$OFFLINE" ]; then
  cleanup() {
    local rc=$?
    [ -n "${E2E_KEEP_CLUSTER:-}" ] || "$ROOT/hack/kind-offline" down || true
    [ -n "${E2E_KEEP_CLUSTER:-}" ] || "$ROOT/hack/node-sysctls" restore "$SYSCTLS_SAVED" || true
    log "finished in $((SECONDS - start)) s (exit $rc)"
    exit $rc
  }
  trap cleanup EXIT
  "$ROOT/hack/kind-offline" build
  log "pieces ready after $((SECONDS - start)) s"
  "$ROOT/hack/kind-offline" up
  eval "$("$ROOT/hack/kind-offline" env)"
else
  kind() { if command -v kind >/dev/null; then command kind "$@"; else go run "sigs.k8s.io/kind@$KIND_VERSION" "$@"; fi; }
  # kind's default Service range; the suite talks to the fake Secrets
  # Manager's ClusterIP from this machine, through the node.
  SERVICE_SUBNET=10.96.0.0/16
  route=
  cleanup() {
    local rc=$?
    if [ -z "${E2E_KEEP_CLUSTER:-}" ]; then
      kind delete cluster --name "$CLUSTER" || true
      [ -z "$route" ] || ip route delete "$SERVICE_SUBNET" || true
      [ "$(id -u)" != 0 ] || "$ROOT/hack/node-sysctls" restore "$SYSCTLS_SAVED" || true
    fi
    exit $rc
  }
  trap cleanup EXIT
  export KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config}
  # The suite runs kubectl; the local cluster's will do if there is no other.
  command -v kubectl >/dev/null || export PATH=$PATH:$ROOT/.cache/bin
  kind create cluster --name "$CLUSTER" --wait 120s
  node_ip=$(docker inspect -f '{{(index .NetworkSettings.Networks "kind").IPAddress}}' "$CLUSTER-control-plane")
  if [ "$(id -u)" = 0 ]; then
    ip route replace "$SERVICE_SUBNET" via "$node_ip" && route=1
  else
    log "not root: add 'ip route add $SERVICE_SUBNET via $node_ip' if the suite cannot reach the fake"
  fi
fi
log "cluster up after $((SECONDS - start)) s"

# Our images, from the current source, without Docker; the tags are the ones
# the local overlay names.
go run ./hack/images --out "$IMAGES" webhook init-fetch fake-secretsmanager demo-app e2e-irsa-webhook
for t in webhook init-fetch fake-secretsmanager demo-app e2e-irsa-webhook; do
  kind load image-archive --name "$CLUSTER" "$IMAGES/$t.tar"
done
log "images loaded after $((SECONDS - start)) s"

# etcd runs as a static pod inside the control-plane node container; the
# suite reads it through this wrapper.
etcdctl=$ROOT/.cache/kind-etcdctl
mkdir -p "$(dirname "$etcdctl")"
cat >"$etcdctl" <<WRAP
#!/usr/bin/env bash
node=$CLUSTER-control-plane
id=\$(docker exec "\$node" crictl ps --name '^etcd\$' -q | head -1)
exec docker exec "\$node" crictl exec "\$id" etcdctl --endpoints https://127.0.0.1:2379 \\
  --cacert /etc/kubernetes/pki/etcd/ca.crt \\
  --cert /etc/kubernetes/pki/etcd/server.crt --key /etc/kubernetes/pki/etcd/server.key "\$@"
WRAP
chmod +x "$etcdctl"
# TestHelmInstall runs the chart with the Helm pinned in hack/helm, as on the
# local cluster.
make bin/helm
export HELM=$ROOT/bin/helm E2E_ETCDCTL=$etcdctl E2E_OVERLAY=manifests/overlays/kind
go test -tags e2e -count=1 -timeout 40m -v ./e2e/... 2>&1 | tee "$ROOT/.cache/kind-e2e.log"
log "suite finished after $((SECONDS - start)) s"
