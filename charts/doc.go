// Package charts holds the Helm chart charts/secretfetch and no Go code: its
// tests lint the chart, compare its renders with golden files, check that
// values.schema.json rejects a typo, and keep the default render equal to
// the kustomize base in manifests/base, and the render of mode: policy equal
// to manifests/overlays/policy.
//
// The tests run the helm binary named by $HELM (make chart-test builds the
// version pinned in hack/helm) and kubectl for kustomize; without them they
// skip.
package charts
