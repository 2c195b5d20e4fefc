#!/usr/bin/env bash
# hack/fuzz.sh (make fuzz [FUZZTIME=30s]): run every fuzz target for a while.
# `make test` already runs their checked-in seed corpora; this searches for
# new inputs. A failing input is written under the package's testdata/fuzz/,
# where it becomes part of the seed corpus once committed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
time=${1:-30s}
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== $pkg $target ($time)"
    go test -run '^$' -fuzz "^$target\$" -fuzztime "$time" "$pkg"
  done
done
