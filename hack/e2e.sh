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
eval "$(hack/local-cluster env)"
export E2E_ETCDCTL="$ROOT/.cache/bin/etcdctl --endpoints http://127.0.0.1:2379"
go test -tags e2e -count=1 -timeout 40m -v ./e2e/... 2>&1 | tee "$ROOT/.cache/e2e.log"
