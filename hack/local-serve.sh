#!/usr/bin/env bash
# hack/local-serve.sh (make local-serve): run the webhook on 127.0.0.1:9443
# in the foreground, with a throwaway CA in .cache/local-serve, for trying
# AdmissionReviews by hand (make local-request). Ctrl-C stops it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
dir=.cache/local-serve
if [ ! -f "$dir/tls.crt" ]; then
  go run ./hack/certs --out "$dir" --dns localhost --ip 127.0.0.1
fi
exec go run ./cmd/webhook --host 127.0.0.1 --port "${PORT:-9443}" --cert-dir "$dir" \
  --init-image secretfetch.local/init-fetch:dev --default-region us-east-1 \
  --metrics-bind-address 127.0.0.1:8080 --health-probe-bind-address 127.0.0.1:8081 --shutdown-delay 0s
