// Package manifests holds the kustomize base and overlays that deploy
// secretfetch, and no Go code: its test renders every overlay with
// `kubectl kustomize` and checks the fields that the design depends on.
package manifests
