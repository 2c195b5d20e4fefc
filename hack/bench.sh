#!/usr/bin/env bash
# hack/bench.sh (make bench): every figure in docs/benchmarks.md, in one run.
#
#   1. init-fetch: BenchmarkFetch (1/20/100 secrets at concurrency 1 and 8,
#      2 ms injected latency), binary size and peak RSS (hack/bench-init.sh)
#   1b. init-fetch under a storm of 200 processes and against a 100 MB
#      answer (hack/storm.sh)
#   2. the webhook in process: BenchmarkHandler (ns/op, allocs/op)
#   3. the webhook over HTTPS: 32 connections for 20 s (hack/webhook-load.sh)
#   4. injection overhead on the local cluster: pod creation to Ready with and
#      without injection, median of 10 pods each (skipped with SKIP_CLUSTER=1)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

say() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

say "machine"
echo "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3)"

say "init-fetch: fetch time"
go test -run '^$' -bench 'BenchmarkFetch$' -benchtime 20x -count 3 ./internal/fetch/

say "init-fetch: binary size and peak RSS"
command -v /usr/bin/time >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
hack/bench-init.sh

say "init-fetch: storm and a 100 MB answer"
RUNS=1 hack/storm.sh

say "webhook: in-process handler"
go test -run '^$' -bench BenchmarkHandler -benchmem -count 3 ./internal/mutate/

say "webhook: over HTTPS"
hack/webhook-load.sh

if [ -n "${SKIP_CLUSTER:-}" ]; then
  echo "SKIP_CLUSTER is set: not measuring the injection overhead"
  exit 0
fi
say "injection overhead on the local cluster"
hack/local-cluster up
hack/local-cluster images
eval "$(hack/local-cluster env)"
go test -tags e2e -count=1 -timeout 20m -run '^$' -bench InjectionOverhead -benchtime 1x ./e2e/
echo "the local cluster is still up; make cluster-down removes it"
