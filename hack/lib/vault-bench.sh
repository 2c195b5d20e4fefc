# hack/lib/vault-bench.sh: what hack/bench-vault.sh and
# hack/bench-vault-injector.sh share: the loads, the builds, and waiting for
# and measuring a server. It is sourced, not run. The caller sets tmp (a
# directory of its own) and VAULT_K8S_DIR, runs from the repository's root,
# and keeps the server it measures in server_pid.

RATES=${RATES:-0 1000 2000}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
PORT=${PORT:-19443}
HEALTH_PORT=${HEALTH_PORT:-19081}
VAULT_PORT=${VAULT_PORT:-19444}
server_pid=""

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# stop_server: stop the server in server_pid, if there is one.
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

# build_common: into $tmp, cmd/webhook as the Deployment's image has it,
# hack/webhook-load, a serving certificate for 127.0.0.1 (certs/), and
# hack/vault-bench pointed at VAULT_K8S_DIR (vault-bench/, its binary
# vault-bench-bin), with vault-k8s's review derived from ours
# (vault-review.json).
build_common() {
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -buildid=" -o "$tmp/webhook" ./cmd/webhook
  go build -trimpath -o "$tmp/webhook-load" ./hack/webhook-load
  go run ./hack/certs --out "$tmp/certs" --dns localhost --ip 127.0.0.1 >/dev/null
  cp -r hack/vault-bench "$tmp/vault-bench"
  (cd "$tmp/vault-bench" && go mod edit -replace "github.com/hashicorp/vault-k8s=$VAULT_K8S_DIR")
  # Static, as vault-k8s's Makefile builds its release binary: with cgo,
  # the C library's pages would count in its RSS (about 1.5 MB).
  (cd "$tmp/vault-bench" && CGO_ENABLED=0 go build -o "$tmp/vault-bench-bin" .)
  "$tmp/vault-bench-bin" review --in hack/testdata/admissionreview.json >"$tmp/vault-review.json"
}

# wait_ready URL NAME [CURL_ARGS...]: wait for the readiness endpoint of
# the server in server_pid, whose log is $tmp/NAME.log.
wait_ready() {
  local url=$1 name=$2
  shift 2
  for _ in $(seq 1 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then log "$name exited:"; cat "$tmp/$name.log" >&2; exit 1; fi
    if curl -fsS -o /dev/null "$@" "$url" 2>/dev/null; then return; fi
    sleep 0.1
  done
  log "$name never became ready"; cat "$tmp/$name.log" >&2; exit 1
}

# measure NAME URL REVIEW: every rate of RATES against the server in
# server_pid, then its peak RSS, then stop it.
measure() {
  for rate in $RATES; do
    log "$1: rate=$rate connections=$CONNECTIONS duration=$DURATION"
    "$tmp/webhook-load" --url "$2" --ca "$tmp/certs/ca.crt" --review "$3" \
      --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
      --rate "$rate" --server-pid "$server_pid" | sed "s/^/[$1] /"
  done
  echo "[$1] peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$server_pid/status")"
  stop_server
}
