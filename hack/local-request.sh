#!/usr/bin/env bash
# hack/local-request.sh (make local-request): send a saved AdmissionReview
# (REVIEW, default hack/testdata/admissionreview.json) to the webhook that
# make local-serve runs, and print the decision and the decoded JSON patch.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
review=${REVIEW:-hack/testdata/admissionreview.json}
out=$(curl -fsS --cacert .cache/local-serve/ca.crt -H 'Content-Type: application/json' \
  --data-binary "@$review" "https://127.0.0.1:${PORT:-9443}/mutate-v1-pod")
python3 - "$out" <<'PY'
import base64, json, sys
resp = json.loads(sys.argv[1])["response"]
print("allowed:", resp["allowed"])
if resp.get("status", {}).get("message"):
    print("message:", resp["status"]["message"])
if resp.get("patch"):
    print(json.dumps(json.loads(base64.b64decode(resp["patch"])), indent=2))
PY
