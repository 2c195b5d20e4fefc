#!/usr/bin/env bash
# hack/e2e.sh: for each Kubernetes version of the suite, bring up the local
# cluster, build and load the images, run the admission policies against that
# version's API server (envtest) and the e2e suite, and tear the cluster down
# again, even on failure, before the next version comes up: the two never run
# at once.
#
#   1.34   the oldest in EKS standard support: the core suite (E2E_CORE)
#   1.37   the newest: the whole suite
#
# E2E_KUBERNETES picks the versions (default "1.34 1.37"; KUBERNETES=1.34
# from make means that one alone). Set E2E_KEEP_CLUSTER=1 to leave the last
# cluster running afterwards. A failure on one version is reported at the
# end, after the other has run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# E2E_CORE is what 1.34 runs: files, rotation and failure, IRSA through the
# pod identity webhook's double, refresh through the native sidecar (also in
# a Job), the admission policies, and the features a version has or denies
# (TestClusterFeatures), and an install with the chart (TestHelmInstall, which
# the chart's claim of versions rests on). Of the rest, some build on EnvFiles
# (1.35) or RestartAllContainers (1.36), which 1.34 denies, and the others
# test secretfetch's own code, which does not change with the cluster's
# version, at the cost of minutes.
E2E_CORE='^(TestHappyPath|TestRotation|TestFailClosed|TestBadAnnotation|TestReinvocation|TestRefreshNewValue|TestRefreshSwapsTogether|TestRefreshJobCompletes|TestPolicyWhenWebhookBypassed|TestAllowedSecrets|TestPolicyInitImageUpgrade|TestClusterFeatures|TestHelmInstall)$'
# And of envtest, the admission policies without the pods and the policy
# mode that 1.34's API server refuses by itself: the webhook's golden pods with
# fileKeyRef (EnvFiles) or restartPolicyRules (RestartAllContainers), which it
# finds invalid, and MutatingAdmissionPolicy, which it does not serve.
ENVTEST_CORE='^TestPolic'
ENVTEST_SKIP='^(TestPolicyAdmitsTheWebhooksPods|TestPolicyModeInstall)$'
versions=${E2E_KUBERNETES:-${KUBERNETES:-1.34 1.37}}

cleanup() {
  local rc=$?
  if [ -z "${E2E_KEEP_CLUSTER:-}" ]; then
    hack/local-cluster down || true
  fi
  exit $rc
}
trap cleanup EXIT

# TestHelmInstall runs the chart with the Helm pinned in hack/helm.
make bin/helm
export HELM="$ROOT/bin/helm"

# run_version V brings up Kubernetes V, runs its tests, and takes it down
# (the last one stays up with E2E_KEEP_CLUSTER).
run_version() {
  local v=$1 last=$2 run=() envrun=() log=$ROOT/.cache/e2e.log envlog=$ROOT/.cache/envtest.log start=$SECONDS rc=0
  if [ "$v" != 1.37 ]; then
    run=(-run "$E2E_CORE")
    envrun=(-run "$ENVTEST_CORE" -skip "$ENVTEST_SKIP")
    log=$ROOT/.cache/e2e-$v.log envlog=$ROOT/.cache/envtest-$v.log
  fi
  echo "== Kubernetes $v: ${run[*]:-the whole suite}"
  # Called in a condition, where set -e does not stop the function: each
  # step says so itself.
  KUBERNETES=$v hack/local-cluster up || return 1
  echo "cluster up after $((SECONDS - start)) s"
  KUBERNETES=$v hack/local-cluster images || return 1
  local bin
  bin=$(KUBERNETES=$v hack/local-cluster bin) || return 1
  # The admission policies against this version's own API server and etcd,
  # which the cluster's build left in $bin.
  KUBEBUILDER_ASSETS=$bin hack/envtest.sh "${envrun[@]}" 2>&1 | tee "$envlog" || rc=$?
  [ $rc = 0 ] || echo "hack/envtest.sh failed on Kubernetes $v (exit $rc); see $envlog" >&2
  (
    eval "$(hack/local-cluster env)"
    export E2E_ETCDCTL="$bin/etcdctl --endpoints http://127.0.0.1:2379"
    go test -tags e2e -count=1 -timeout 40m -v "${run[@]}" ./e2e/... 2>&1 | tee "$log"
  ) || rc=$?
  echo "== Kubernetes $v: exit $rc after $((SECONDS - start)) s (log $log)"
  if [ "$last" = 0 ] || [ -z "${E2E_KEEP_CLUSTER:-}" ]; then
    hack/local-cluster down || rc=1
  fi
  return $rc
}

failed=()
# shellcheck disable=SC2086 # a list of versions
set -- $versions
while [ $# -gt 0 ]; do
  last=0
  [ $# = 1 ] && last=1
  run_version "$1" $last || failed+=("$1")
  shift
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "e2e failed on Kubernetes ${failed[*]}" >&2
  exit 1
fi
