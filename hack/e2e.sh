#!/usr/bin/env bash
# hack/e2e.sh: bring up the local cluster (or reuse it), build and load the
# images, run the e2e suite, and tear the cluster down again, even on failure.
# Set E2E_KEEP_CLUSTER=1 to leave the cluster running afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

cleanup() {
  local rc=$?
  if [ -z "${E2E_KEEP_CLUSTER:-}" ]; then
    hack/local-cluster down || true
  fi
  exit $rc
}
trap cleanup EXIT

start=$SECONDS
hack/local-cluster up
echo "cluster up after $((SECONDS - start)) s"
hack/local-cluster images
# The cluster's build left kube-apiserver, etcd and kubectl in .cache/bin:
# the admission policies against an API server of their own (envtest).
# A failure there is reported at the end, after the e2e suite has run.
envtest_rc=0
hack/envtest.sh 2>&1 | tee "$ROOT/.cache/envtest.log" || envtest_rc=$?
eval "$(hack/local-cluster env)"
# TestHelmInstall runs the chart with the Helm pinned in hack/helm.
make bin/helm
export HELM="$ROOT/bin/helm"
export E2E_ETCDCTL="$ROOT/.cache/bin/etcdctl --endpoints http://127.0.0.1:2379"
go test -tags e2e -count=1 -timeout 40m -v ./e2e/... 2>&1 | tee "$ROOT/.cache/e2e.log"
if [ "$envtest_rc" -ne 0 ]; then
  echo "hack/envtest.sh failed (exit $envtest_rc); see .cache/envtest.log" >&2
  exit "$envtest_rc"
fi
