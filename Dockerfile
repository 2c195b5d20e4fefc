# syntax=docker/dockerfile:1
#
# The images for users with Docker or BuildKit, and for `make kind-e2e`.
#
# This Dockerfile has NOT been built on the machines secretfetch is developed
# on: they have no Docker engine. There, `go run ./hack/images` packs the same
# static binaries into equivalent images (scratch base, CA certificates,
# numeric nonroot user) with go-containerregistry.
#
# One target per binary; the last one, webhook, is the default:
#   docker build --target webhook             -t secretfetch.local/webhook:dev .
#   docker build --target init-fetch          -t secretfetch.local/init-fetch:dev .
#   docker build --target fake-secretsmanager -t secretfetch.local/fake-secretsmanager:dev .
#   docker build --target demo-app            -t secretfetch.local/demo-app:dev .
#
# Both base images are pinned by digest, resolved on 2026-11-22 (golang
# 1.26.9, the release of 2026-10-08; distroless static-debian12:nonroot as
# published then). A bot (Renovate or Dependabot) should bump the digests;
# never follow the tags by hand.

# The builder runs natively and cross-compiles (CGO_ENABLED=0), so an arm64
# image needs no emulator on an amd64 machine.
FROM --platform=$BUILDPLATFORM golang:1.26.9@sha256:f1f0bcc2c524a3ced375fcb4d1ecb7aa371aa7070e112599aaca45cc02d0101b AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG TARGETOS=linux
ARG TARGETARCH
# Static and reproducible: no cgo, no local paths, no build ID. All four
# binaries in one go build, so every target below shares this one stage.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -buildid=" -o /out/ \
      ./cmd/webhook ./cmd/init-fetch ./cmd/fake-secretsmanager ./cmd/demo-app

# distroless static: CA certificates, /etc/passwd, no shell, no package
# manager. The user is numeric so that the kubelet can check runAsNonRoot
# without reading /etc/passwd.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab AS runtime
USER 65532:65532

FROM runtime AS init-fetch
COPY --from=build /out/init-fetch /init-fetch
ENTRYPOINT ["/init-fetch"]

FROM runtime AS fake-secretsmanager
COPY --from=build /out/fake-secretsmanager /fake-secretsmanager
ENTRYPOINT ["/fake-secretsmanager"]

FROM runtime AS demo-app
COPY --from=build /out/demo-app /demo-app
ENTRYPOINT ["/demo-app"]

FROM runtime AS webhook
COPY --from=build /out/webhook /webhook
ENTRYPOINT ["/webhook"]
