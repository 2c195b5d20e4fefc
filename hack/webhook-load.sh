#!/usr/bin/env bash
# hack/webhook-load.sh: measure the webhook over HTTPS on this machine.
#
# Builds cmd/webhook and hack/webhook-load, makes a throwaway CA and serving
# certificate for 127.0.0.1, starts the webhook on loopback, waits for
# /readyz, then sends hack/testdata/admissionreview.json (3 containers, 10
# secrets, IRSA) from 32 keep-alive connections:
#   1. closed loop: every connection sends as soon as its answer arrives
#      (the maximum throughput);
#   2. open loop at 2,000 requests/s: the latency at the target rate;
#   3. open loop at 500 requests/s: the latency below saturation.
# It stops exactly the webhook it started, on exit or interrupt.
#
# Environment: PORT (19443), HEALTH_PORT (19081), CONNECTIONS (32),
# DURATION (20s), WARMUP (2s), RATES ("0 2000 500"; 0 is the closed loop), and
# the webhook's GOGC (100, Go's default) and GOMEMLIMIT (200MiB), as in
# manifests/base/deployment.yaml. Extra arguments go to every webhook-load run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PORT=${PORT:-19443}
HEALTH_PORT=${HEALTH_PORT:-19081}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-2s}
RATES=${RATES:-0 2000 500}
WEBHOOK_GOGC=${GOGC:-100}
WEBHOOK_GOMEMLIMIT=${GOMEMLIMIT:-200MiB}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/secretfetch-load.XXXXXX")
webhook_pid=""
cleanup() {
  if [ -n "$webhook_pid" ]; then
    kill "$webhook_pid" 2>/dev/null || true
    wait "$webhook_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

log "building cmd/webhook and hack/webhook-load"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -buildid=" -o "$tmp/webhook" ./cmd/webhook
go build -trimpath -o "$tmp/webhook-load" ./hack/webhook-load
go run ./hack/certs --out "$tmp/certs" --dns localhost --ip 127.0.0.1 >/dev/null

log "starting the webhook on 127.0.0.1:$PORT, GOGC=$WEBHOOK_GOGC GOMEMLIMIT=$WEBHOOK_GOMEMLIMIT (the Deployment: Go's default GOGC and 200MiB) (log: $tmp/webhook.log)"
GOGC=$WEBHOOK_GOGC GOMEMLIMIT=$WEBHOOK_GOMEMLIMIT "$tmp/webhook" \
  --cert-dir "$tmp/certs" \
  --host 127.0.0.1 \
  --port "$PORT" \
  --init-image=secretfetch.local/init-fetch:dev \
  --default-region us-east-1 \
  --metrics-bind-address 0 \
  --health-probe-bind-address "127.0.0.1:$HEALTH_PORT" \
  >"$tmp/webhook.log" 2>&1 &
webhook_pid=$!

for _ in $(seq 1 300); do
  if ! kill -0 "$webhook_pid" 2>/dev/null; then
    log "the webhook exited:"; cat "$tmp/webhook.log" >&2; webhook_pid=""; exit 1
  fi
  if curl -fsS -o /dev/null "http://127.0.0.1:$HEALTH_PORT/readyz" 2>/dev/null; then break; fi
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$HEALTH_PORT/readyz" || { log "the webhook never became ready"; cat "$tmp/webhook.log" >&2; exit 1; }

echo "webhook: GOGC=$WEBHOOK_GOGC GOMEMLIMIT=$WEBHOOK_GOMEMLIMIT; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(go env GOVERSION), $(date -u +%Y-%m-%d)"
for rate in $RATES; do
  log "load: rate=$rate connections=$CONNECTIONS duration=$DURATION"
  "$tmp/webhook-load" \
    --url "https://127.0.0.1:$PORT/mutate-v1-pod" \
    --ca "$tmp/certs/ca.crt" \
    --review hack/testdata/admissionreview.json \
    --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
    --rate "$rate" --server-pid "$webhook_pid" "$@"
done
echo "webhook peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$webhook_pid/status")"
