#!/usr/bin/env bash
# bench-init.sh: the figures of the init container.
#
#   - the size of the stripped, static init-fetch binary (target <= 12 MB)
#   - the peak RSS of one run fetching 20 secrets from the fake Secrets
#     Manager over loopback (target <= 30 MB), from /usr/bin/time -v
#
# Usage: hack/bench-init.sh            (RUNS=5 by default; the max is reported)
# Needs: go, /usr/bin/time (apt-get install -y time), curl, python3, awk.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
RUNS=${RUNS:-5}
SECRETS=20

[[ -x /usr/bin/time ]] || { echo "bench-init: /usr/bin/time is missing (apt-get install -y time)" >&2; exit 1; }

work=$(mktemp -d)
fake_pid=""
cleanup() {
	# Stop exactly the fake this script started, then remove the work dir.
	if [[ -n "$fake_pid" ]]; then
		kill "$fake_pid" 2>/dev/null || true
		wait "$fake_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "== building"
build_cmd=(env CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -buildid=" -o "$work/init-fetch" ./cmd/init-fetch)
echo "${build_cmd[*]}"
"${build_cmd[@]}"
# The fake is built rather than started with `go run`, so that the PID this
# script holds is the server's own and the trap stops exactly it.
"$GO" build -o "$work/fake-secretsmanager" ./cmd/fake-secretsmanager

size=$(stat -c %s "$work/init-fetch")

# A free loopback port, chosen by the kernel.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# 20 secrets, a mix of plain strings and JSON documents.
python3 - "$work/seed.json" "$SECRETS" <<'EOF'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
seed = []
for i in range(n):
    if i % 2:
        seed.append({"name": f"bench/s{i:02d}", "string": json.dumps({"user": f"u{i}", "password": "p" * 32})})
    else:
        seed.append({"name": f"bench/s{i:02d}", "string": "v" * 64})
json.dump(seed, open(path, "w"))
EOF

"$work/fake-secretsmanager" --listen "127.0.0.1:$port" --seed "$work/seed.json" >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
	kill -0 "$fake_pid" 2>/dev/null || { echo "bench-init: the fake exited:" >&2; cat "$work/fake.log" >&2; exit 1; }
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { echo "bench-init: the fake did not come up" >&2; exit 1; }

# The access keys the fake accepts by default.
akid=$(sed -n 's/^[[:space:]]*DefaultAccessKeyID[[:space:]]*= "\(.*\)"/\1/p' internal/smfake/*.go | head -1)
secret=$(sed -n 's/^[[:space:]]*DefaultSecretAccessKey[[:space:]]*= "\(.*\)"/\1/p' internal/smfake/*.go | head -1)

args=(--dir "$work/out" --region us-east-1 --allow-non-tmpfs --termination-log "")
for i in $(seq 0 $((SECRETS - 1))); do
	n=$(printf '%02d' "$i")
	args+=(--secret "s$n=bench/s$n")
done

echo "== running init-fetch $RUNS times, $SECRETS secrets each"
echo "/usr/bin/time -v init-fetch --dir DIR --region us-east-1 --allow-non-tmpfs --secret s00=bench/s00 ... (x$SECRETS)"
rss=()
wall=()
for r in $(seq "$RUNS"); do
	rm -rf "$work/out" && mkdir "$work/out"
	env -i PATH="$PATH" HOME="$work" \
		AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$port" \
		AWS_ACCESS_KEY_ID="$akid" AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1 \
		AWS_EC2_METADATA_DISABLED=true \
		/usr/bin/time -v -o "$work/time.txt" "$work/init-fetch" "${args[@]}" 2>"$work/run.log" ||
		{ echo "bench-init: init-fetch failed:" >&2; cat "$work/run.log" >&2; exit 1; }
	files=$(find "$work/out" -type f | wc -l)
	[[ "$files" == "$SECRETS" ]] || { echo "bench-init: $files files written, want $SECRETS" >&2; exit 1; }
	rss+=("$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")")
	wall+=("$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time.txt")")
done
max_rss=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)

echo
echo "== results"
echo "date:            $(date -u +%Y-%m-%d)"
echo "machine:         $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "go:              $("$GO" env GOVERSION)"
awk -v s="$size" 'BEGIN { printf "binary size:     %d bytes (%.1f MiB, %.1f MB)\n", s, s / 1048576, s / 1000000 }'
echo "peak RSS (kB):   ${rss[*]}"
awk -v k="$max_rss" 'BEGIN { printf "peak RSS max:    %d kB (%.1f MiB)\n", k, k / 1024 }'
echo "wall (m:ss):     ${wall[*]}"
