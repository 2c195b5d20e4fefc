# secretfetch: a thin Makefile; the work is in hack/ scripts and Go tests.
SHELL := /usr/bin/env bash -o pipefail
GO ?= go
BIN ?= bin
LDFLAGS := -s -w -buildid=
KUBECONFIG_LOCAL := $(CURDIR)/.cache/cluster/admin.kubeconfig

.PHONY: all build test chart-test envtest e2e kind-e2e demo deploy bench bench-vault bench-vault-injector lint cluster-up cluster-down images fuzz local-serve local-request

all: build test

## build: static binaries for every command into ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

## test: unit and integration tests, fuzz seeds and golden files, and the env file writer against the kubelet's parser (no cluster needed)
test:
	$(GO) test -count=1 ./...
	$(GO) -C hack/kubeletenv test -count=1 ./...

## chart-test: helm lint, golden renders, the values schema and the chart's
## equality with manifests/base, with the Helm pinned in hack/helm. Apart from
## make test: a cold Helm build costs about 250 CPU-seconds (2 min on 2 idle
## cores), then it is a file in ./bin.
chart-test: $(BIN)/helm
	HELM=$(CURDIR)/$(BIN)/helm $(GO) test -count=1 ./charts/...

$(BIN)/helm: hack/helm/go.mod hack/helm/go.sum
	$(GO) -C hack/helm build -trimpath -ldflags "$(LDFLAGS)" -o $(CURDIR)/$(BIN)/helm helm.sh/helm/v4/cmd/helm

## envtest: the admission policies against a real kube-apiserver and etcd
## (KUBEBUILDER_ASSETS, or .cache/bin after make cluster-up)
envtest:
	hack/envtest.sh

## fuzz: run each fuzz target for a while (FUZZTIME=30s)
fuzz:
	hack/fuzz.sh $(FUZZTIME)

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## KUBERNETES: the local cluster's version, 1.37 (the default) or 1.34, for
## cluster-up, demo and e2e (which runs only that version when it is set)
KUBERNETES ?=

## cluster-up / cluster-down: the local single-node cluster built from source (root);
## cluster-down takes down whichever version is up
cluster-up:
	KUBERNETES=$(KUBERNETES) hack/local-cluster up
cluster-down:
	hack/local-cluster down

## images: build the OCI images without Docker and load them into the local cluster
images:
	hack/local-cluster images

## e2e: for Kubernetes 1.34 then 1.37: cluster up, envtest and the e2e suite (the core on
## 1.34, all on 1.37), cluster down (even on failure)
e2e:
	KUBERNETES=$(KUBERNETES) hack/e2e.sh

## kind-e2e: the same suite on kind: kind's node image (a Docker engine and a registry), or
## with SECRETFETCH_KIND_OFFLINE=1 (root, no registry) a node image built here and a dockerd of its own
kind-e2e:
	hack/kind-e2e.sh

## demo: cluster, webhook, fake Secrets Manager and an annotated Deployment; prints what the app sees
demo:
	KUBERNETES=$(KUBERNETES) hack/demo.sh

## deploy: render an overlay (OVERLAY=manifests/overlays/cert-manager) and apply it to the current cluster
OVERLAY ?= manifests/overlays/cert-manager
deploy:
	kubectl apply -k $(OVERLAY)

## local-serve / local-request: the webhook on 127.0.0.1:9443, and a saved AdmissionReview sent to it
local-serve:
	hack/local-serve.sh
local-request:
	hack/local-request.sh

## bench: benchmarks and figures (see docs/benchmarks.md)
bench:
	hack/bench.sh

## bench-vault: secretfetch's webhook against vault-k8s's, in process and over HTTPS,
## alternating (VAULT_K8S_DIR: a checkout of github.com/hashicorp/vault-k8s; see docs/benchmarks.md)
bench-vault:
	hack/bench-vault.sh

## bench-vault-injector: peak RSS and the same loads against vault-k8s's own injector command,
## both run as in-cluster processes against the local cluster (make cluster-up; root; VAULT_K8S_DIR)
bench-vault-injector:
	KUBECONFIG=$(KUBECONFIG_LOCAL) hack/bench-vault-injector.sh
