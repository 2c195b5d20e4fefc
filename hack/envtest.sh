#!/usr/bin/env bash
# hack/envtest.sh: the admission policies of manifests/base and of the policy
# mode (overlays/policy, held to the webhook by TestModesAgree) against a
# real API server, and the chart's policy parameters across helm install and
# upgrade. envtest (controller-runtime) starts kube-apiserver and etcd from
# KUBEBUILDER_ASSETS on loopback ports and stops them when the tests end.
# The binaries are the ones hack/local-cluster builds into .cache/bin (setup-
# envtest downloads do not work here); point KUBEBUILDER_ASSETS elsewhere to
# use others. The chart's test uses the Helm pinned in hack/helm (make
# bin/helm, once), or $HELM.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

assets=${KUBEBUILDER_ASSETS:-$ROOT/.cache/bin}
for b in kube-apiserver etcd kubectl; do
  if [ ! -x "$assets/$b" ]; then
    echo "envtest: $assets/$b is missing: set KUBEBUILDER_ASSETS to a folder holding kube-apiserver, etcd and kubectl, or run hack/local-cluster up, which builds them into .cache/bin" >&2
    exit 1
  fi
done
export KUBEBUILDER_ASSETS=$assets
# Render the base with the same kubectl, not whichever is first in PATH.
export KUBECTL=${KUBECTL:-$assets/kubectl}
if [ -z "${HELM:-}" ]; then
  make --no-print-directory bin/helm
  export HELM=$ROOT/bin/helm
fi
# One package at a time: each starts an API server and etcd of its own.
go test -tags envtest -count=1 -p 1 -run '^(TestPolic|TestModes)' -v ./manifests/ ./charts/ "$@"
