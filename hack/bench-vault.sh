#!/usr/bin/env bash
# hack/bench-vault.sh: secretfetch's webhook against the Vault Agent
# Injector (vault-k8s), side by side on this machine, alternating A B A B so
# that both see the same drift of a shared machine.
#
#   VAULT_K8S_DIR=/path/to/vault-k8s hack/bench-vault.sh
#   hack/bench-vault.sh --vault-k8s-dir /path/to/vault-k8s
#
# VAULT_K8S_DIR is a checkout of github.com/hashicorp/vault-k8s (the figures
# in docs/benchmarks.md are of tag v1.7.6): the Go module proxy does not
# serve it, so hack/vault-bench, a module of its own, is pointed at it with
# go mod edit -replace in a copy; vault-k8s's dependencies come from the
# proxy as usual.
#
#   1. in process: BenchmarkHandlerReview (internal/mutate: our Endpoint) and
#      BenchmarkVaultHandler (hack/vault-bench: vault-k8s's Handler.Handle),
#      ROUNDS times each, alternating; the same pod
#      (hack/testdata/admissionreview.json; vault-k8s's with its own
#      annotations for ten secrets);
#   2. over HTTPS on loopback: cmd/webhook (as the Deployment runs it) and
#      vault-k8s's handler served as its injector serves it
#      (hack/vault-bench serve), each measured by hack/webhook-load at every
#      rate of RATES (0 is the closed loop), HTTPS_ROUNDS times, alternating;
#      each server's peak RSS (VmHWM) at the end of its round.
#
# Environment: ROUNDS (5), BENCHTIME (2000x), HTTPS_ROUNDS (2), RATES
# ("0 1000 2000"), CONNECTIONS (32), DURATION (10s), WARMUP (2s), SKIP_HTTPS
# (set: in process only), and the webhook's GOGC (100, Go's default) and GOMEMLIMIT
# (200MiB), as in manifests/base/deployment.yaml; vault-k8s runs with Go's
# defaults, as its chart does.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ "${1:-}" = "--vault-k8s-dir" ]; then VAULT_K8S_DIR=$2; shift 2; fi
VAULT_K8S_DIR=${VAULT_K8S_DIR:-}
if [ -z "$VAULT_K8S_DIR" ] || [ ! -f "$VAULT_K8S_DIR/agent-inject/handler.go" ]; then
  echo "bench-vault: set VAULT_K8S_DIR (or --vault-k8s-dir) to a checkout of github.com/hashicorp/vault-k8s, e.g. tag v1.7.6" >&2
  exit 2
fi
VAULT_K8S_DIR=$(cd "$VAULT_K8S_DIR" && pwd)
ROUNDS=${ROUNDS:-5}
BENCHTIME=${BENCHTIME:-2000x}
HTTPS_ROUNDS=${HTTPS_ROUNDS:-2}
# shellcheck source=hack/lib/vault-bench.sh
. hack/lib/vault-bench.sh
VAULT_HEALTH_PORT=${VAULT_HEALTH_PORT:-19082}
WEBHOOK_GOGC=${GOGC:-100}
WEBHOOK_GOMEMLIMIT=${GOMEMLIMIT:-200MiB}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/secretfetch-vault.XXXXXX")
cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building: ours (internal/mutate test binary, cmd/webhook, hack/webhook-load) and vault-k8s at $VAULT_K8S_DIR ($(git -C "$VAULT_K8S_DIR" describe --tags 2>/dev/null || echo 'no git tag'))"
go test -c -o "$tmp/ours.test" ./internal/mutate
build_common
(cd "$tmp/vault-bench" && go test -c -o "$tmp/vault.test" .)

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(go env GOVERSION), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "secretfetch: $(git rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout')$(git diff --quiet -- internal/mutate 2>/dev/null || echo ' (internal/mutate modified)')"

echo
echo "== in process: $ROUNDS rounds of $BENCHTIME, alternating"
for i in $(seq "$ROUNDS"); do
  (cd internal/mutate && "$tmp/ours.test" -test.run '^$' -test.bench '^BenchmarkHandlerReview$' -test.benchmem -test.benchtime "$BENCHTIME") | grep '^Benchmark' | tee -a "$tmp/inproc.txt"
  (cd "$tmp/vault-bench" && "$tmp/vault.test" -test.run '^$' -test.bench '^BenchmarkVaultHandler$' -test.benchmem -test.benchtime "$BENCHTIME" -review "$ROOT/hack/testdata/admissionreview.json") | grep '^Benchmark' | tee -a "$tmp/inproc.txt"
done
# median NAME: the median ns/op of a benchmark's rounds.
median() { grep "^$1-" "$tmp/inproc.txt" | awk '{print $3}' | sort -n | awk '{v[NR]=$1} END {printf "%d\n", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ours=$(median BenchmarkHandlerReview)
vault=$(median BenchmarkVaultHandler)
awk -v o="$ours" -v v="$vault" 'BEGIN {printf "median: secretfetch %.1f us/op, vault-k8s %.1f us/op; ratio %.2f\n", o/1000, v/1000, o/v}'

if [ -n "${SKIP_HTTPS:-}" ]; then exit 0; fi
echo
echo "== over HTTPS: $HTTPS_ROUNDS rounds, alternating; rates: $RATES (0: closed loop), $CONNECTIONS connections, $DURATION each"
for i in $(seq "$HTTPS_ROUNDS"); do
  GOGC=$WEBHOOK_GOGC GOMEMLIMIT=$WEBHOOK_GOMEMLIMIT "$tmp/webhook" \
    --cert-dir "$tmp/certs" --host 127.0.0.1 --port "$PORT" \
    --init-image=secretfetch.local/init-fetch:dev --default-region us-east-1 \
    --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$HEALTH_PORT" \
    >"$tmp/secretfetch.log" 2>&1 &
  server_pid=$!
  wait_ready "http://127.0.0.1:$HEALTH_PORT/readyz" secretfetch
  measure "secretfetch $i" "https://127.0.0.1:$PORT/mutate-v1-pod" hack/testdata/admissionreview.json

  "$tmp/vault-bench-bin" serve --listen "127.0.0.1:$VAULT_PORT" --health "127.0.0.1:$VAULT_HEALTH_PORT" \
    --cert-dir "$tmp/certs" --log "$tmp/vault-k8s.log" >"$tmp/vault-k8s.out" 2>&1 &
  server_pid=$!
  wait_ready "http://127.0.0.1:$VAULT_HEALTH_PORT/health/ready" vault-k8s
  measure "vault-k8s $i" "https://127.0.0.1:$VAULT_PORT/mutate" "$tmp/vault-review.json"
done
