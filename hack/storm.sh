#!/usr/bin/env bash
# storm.sh: init-fetch under stress, on loopback (hack/storm does the work).
#
#   1. A storm: N init-fetch processes at once against the fake Secrets
#      Manager capped at R GetSecretValue calls a second (ThrottlingException
#      over it), with every K-th answer cut off mid-body as a dropped
#      connection is. Prints successes, calls, amplification (calls per
#      process) and the wall time against the ideal. Fails if any process
#      failed.
#   2. A 100 MB answer, as a SecretString and as an error message: how
#      init-fetch ends, the size of its stderr, and its peak RSS.
#   3. A sidecar storm: SIDECARS refresh sidecars started at once, SECRETS
#      secrets each every INTERVAL, against a quota of QUOTA calls a second
#      (DescribeSecret and GetSecretValue together) that drops to
#      BURST_QUOTA for BURST_FOR: calls and throttling per phase, and
#      whether every pod kept its files. Then the same with the sidecar's
#      old polling (--naive), for comparison. Fails if a pod lost a file.
#
# Usage: hack/storm.sh     (N=200 R=50 CUT_EVERY=50 RUNS=3 HUGE=100000000
#                          SIDECARS=300 SECRETS=3 INTERVAL=15s QUOTA=100 BURST_QUOTA=20 BURST_FOR=15s)
# Needs: go. Keep N modest on a small machine: each process is ~14 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
N=${N:-200}
R=${R:-50}
CUT_EVERY=${CUT_EVERY:-50}
RUNS=${RUNS:-3}
HUGE=${HUGE:-100000000}
SIDECARS=${SIDECARS:-300}
SECRETS=${SECRETS:-3}
INTERVAL=${INTERVAL:-15s}
QUOTA=${QUOTA:-100}
BURST_QUOTA=${BURST_QUOTA:-20}
BURST_FOR=${BURST_FOR:-15s}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== building"
build_cmd=(env CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -buildid=" -o "$work/init-fetch" ./cmd/init-fetch)
echo "${build_cmd[*]}"
"${build_cmd[@]}"
"$GO" build -o "$work/storm" ./hack/storm

status=0
for run in $(seq "$RUNS"); do
	echo
	echo "== storm, run $run of $RUNS: storm --n $N --rate $R --cut-every $CUT_EVERY"
	"$work/storm" --init-fetch "$work/init-fetch" --n "$N" --rate "$R" --cut-every "$CUT_EVERY" || status=1
done

for st in 200 400; do
	echo
	echo "== huge answer: storm --huge-bytes $HUGE --huge-status $st"
	"$work/storm" --init-fetch "$work/init-fetch" --huge-bytes "$HUGE" --huge-status "$st" --timeout 20s
done

for naive in false true; do
	echo
	echo "== sidecar storm: storm --sidecars $SIDECARS --secrets $SECRETS --interval $INTERVAL --rate $QUOTA --burst-rate $BURST_QUOTA --burst-for $BURST_FOR --naive=$naive"
	"$work/storm" --sidecars "$SIDECARS" --secrets "$SECRETS" --interval "$INTERVAL" --rate "$QUOTA" \
		--burst-rate "$BURST_QUOTA" --burst-for "$BURST_FOR" --naive="$naive" || { [ "$naive" = true ] || status=1; }
done
exit "$status"
