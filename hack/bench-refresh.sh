#!/usr/bin/env bash
# bench-refresh.sh: the figures of the refresh sidecar, without a cluster.
#
#   - the time from PutSecretValue to the new file, with a 5 s interval
#   - API calls per secret per interval, for unchanged and changed secrets
#   - the sidecar's idle RSS and CPU over a few minutes
#
# It runs init-fetch once, as the init container does, then init-fetch in
# refresh mode, as the secretfetch-refresh sidecar does, against the fake
# Secrets Manager on loopback, in a directory on /dev/shm (tmpfs).
#
# Usage: hack/bench-refresh.sh   (INTERVAL=5s ROUNDS=5 IDLE=180 SECRETS=20)
# Needs: go, curl, python3, a tmpfs at /dev/shm.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
INTERVAL=${INTERVAL:-5s}
ROUNDS=${ROUNDS:-5}
IDLE=${IDLE:-180}
SECRETS=${SECRETS:-20}

work=$(mktemp -d)
out=$(mktemp -d -p /dev/shm secretfetch-bench-XXXXXX)
fake_pid=""
side_pid=""
cleanup() {
	# Stop exactly the processes this script started.
	for pid in "$side_pid" "$fake_pid"; do
		if [[ -n "$pid" ]]; then
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$work" "$out"
}
trap cleanup EXIT

echo "== building"
env CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -buildid=" -o "$work/init-fetch" ./cmd/init-fetch
"$GO" build -o "$work/fake-secretsmanager" ./cmd/fake-secretsmanager

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$work/seed.json" "$SECRETS" <<'EOF'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
json.dump([{"name": f"bench/s{i:02d}", "string": "v" * 64} for i in range(n)], open(path, "w"))
EOF
"$work/fake-secretsmanager" --listen "127.0.0.1:$port" --admin --seed "$work/seed.json" >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { echo "bench-refresh: the fake did not come up" >&2; exit 1; }

akid=$(sed -n 's/^[[:space:]]*DefaultAccessKeyID[[:space:]]*= "\(.*\)"/\1/p' internal/smfake/*.go | head -1)
secret=$(sed -n 's/^[[:space:]]*DefaultSecretAccessKey[[:space:]]*= "\(.*\)"/\1/p' internal/smfake/*.go | head -1)
args=(--dir "$out" --region us-east-1 --termination-log "")
for i in $(seq 0 $((SECRETS - 1))); do
	n=$(printf '%02d' "$i")
	args+=(--secret "s$n=bench/s$n")
done
awsenv=(env -i PATH="$PATH" HOME="$work"
	AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$port"
	AWS_ACCESS_KEY_ID="$akid" AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1
	AWS_EC2_METADATA_DISABLED=true SECRETFETCH_POD_NAMESPACE=bench SECRETFETCH_POD_NAME=refresh-0)

echo "== first fetch, then the sidecar: init-fetch --refresh-interval=$INTERVAL (x$SECRETS secrets)"
"${awsenv[@]}" "$work/init-fetch" "${args[@]}" 2>"$work/init.log" ||
	{ echo "bench-refresh: init-fetch failed:" >&2; cat "$work/init.log" >&2; exit 1; }
"${awsenv[@]}" "$work/init-fetch" "${args[@]}" --refresh-interval="$INTERVAL" 2>"$work/sidecar.log" &
side_pid=$!

python3 - "$port" "$out" "$side_pid" "$ROUNDS" "$IDLE" "$SECRETS" "$INTERVAL" <<'EOF'
import json, os, random, re, sys, time, urllib.request

port, out, pid, rounds, idle, secrets, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
base = f"http://127.0.0.1:{port}/_fake"

def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        data = r.read()
    return json.loads(data) if data else None

def requests():
    return call("GET", "/requests")

def cpu_ticks():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime, in clock ticks

def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

hz = os.sysconf("SC_CLK_TCK")
m = re.fullmatch(r"([0-9.]+)(ms|s|m)", interval)
period = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)] if m else 5
time.sleep(1)
call("DELETE", "/requests")

# The time from PutSecretValue to the new file.
lat = []
for k in range(rounds):
    value = f"rotated-{k}-" + "x" * 32
    call("POST", "/secrets", {"name": "bench/s00", "string": value})
    t0 = time.monotonic()
    while True:
        try:
            if open(os.path.join(out, "s00")).read() == value:
                break
        except FileNotFoundError:
            pass
        if time.monotonic() - t0 > 120:
            sys.exit("bench-refresh: the new value never arrived")
        time.sleep(0.005)
    lat.append(time.monotonic() - t0)
    # The value arrived right after a poll: start the next round at a
    # random phase of the interval, so that the figures sample it whole.
    time.sleep(random.uniform(0, period))
reqs = requests()
changed_get = sum(1 for r in reqs if r["operation"] == "GetSecretValue" and r.get("secretId") == "bench/s00")
changed_desc = sum(1 for r in reqs if r["operation"] == "DescribeSecret" and r.get("secretId") == "bench/s00")

# Idle: nothing changes.
call("DELETE", "/requests")
c0, t0 = cpu_ticks(), time.monotonic()
rss = [rss_kb()]
while time.monotonic() - t0 < idle:
    time.sleep(5)
    rss.append(rss_kb())
c1, t1 = cpu_ticks(), time.monotonic()
reqs = requests()
desc = sum(1 for r in reqs if r["operation"] == "DescribeSecret")
get = sum(1 for r in reqs if r["operation"] == "GetSecretValue")
polls = desc / secrets
ua = {r.get("userAgent", "") for r in reqs}

cpu_s = (c1 - c0) / hz
print()
print("== results")
print(f"secrets:                   {secrets}, interval {interval}")
print(f"PutSecretValue -> new file (s): {' '.join(f'{x:.2f}' for x in lat)}")
print(f"  min/mean/max (s):        {min(lat):.2f} / {sum(lat)/len(lat):.2f} / {max(lat):.2f}")
print(f"changed secret, {rounds} rotations: {changed_desc} DescribeSecret, {changed_get} GetSecretValue")
print(f"idle {t1 - t0:.0f} s:              {polls:.1f} polls, {desc} DescribeSecret, {get} GetSecretValue")
print(f"  per secret per interval: {desc / (secrets * polls) if polls else 0:.2f} DescribeSecret, {get / (secrets * polls) if polls else 0:.2f} GetSecretValue")
print(f"idle CPU:                  {cpu_s:.2f} s over {t1 - t0:.0f} s ({100 * cpu_s / (t1 - t0):.3f}% of one CPU, {1000 * cpu_s / polls if polls else 0:.1f} ms per poll of {secrets} secrets)")
print(f"idle RSS (kB):             min {min(rss)}, max {max(rss)}")
print(f"user agents seen:          {sorted(ua)}")
EOF
echo "date:     $(date -u +%Y-%m-%d)"
echo "machine:  $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "go:       $("$GO" env GOVERSION)"
echo "swaps logged by the sidecar: $(grep -c '"msg":"swapped secrets"' "$work/sidecar.log")"
