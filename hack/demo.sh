#!/usr/bin/env bash
# hack/demo.sh (make demo): the main job on a fresh machine. It brings up the
# local cluster (or reuses it), deploys the fake Secrets Manager and the
# webhook, seeds demo secrets, rolls out an annotated Deployment, and prints
# what the app sees in /var/run/secrets/app and what the pod spec holds.
#
# SECRETFETCH_MODE=policy runs it in the policy mode instead: no webhook, and
# the API server injects through the MutatingAdmissionPolicy of
# manifests/overlays/local-policy. The app's output is the same.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

mode=${SECRETFETCH_MODE:-webhook}
case "$mode" in
  webhook | policy) ;;
  *) echo "SECRETFETCH_MODE: \"$mode\" is not a mode; use webhook (the default) or policy" >&2; exit 2 ;;
esac

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "local cluster"
# KUBERNETES=1.34 (make demo KUBERNETES=1.34) runs it on the older version.
hack/local-cluster up
hack/local-cluster images
eval "$(hack/local-cluster env)"
server=$(kubectl get --raw /version | jq -r .gitVersion)
minor=$(kubectl get --raw /version | jq -r .minor | tr -dc 0-9)
echo "the API server reports Kubernetes $server"

say "fake Secrets Manager"
kubectl apply -k manifests/fake-secretsmanager
kubectl -n secretfetch-fake rollout status deployment/fake-secretsmanager --timeout=120s
fake="http://$(kubectl -n secretfetch-fake get service fake-secretsmanager -o jsonpath='{.spec.clusterIP}'):4566"
# A new Service needs a moment before kube-proxy routes it.
for _ in $(seq 60); do curl -fsS "$fake/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
seed() { curl -fsS -X POST -H 'Content-Type: application/json' --data "$1" "$fake/_fake/secrets" >/dev/null; }
seed '{"name":"demo/api-key","string":"demo-api-key-7f3a9c"}'
seed '{"name":"demo/db","string":"{\"username\":\"app\",\"password\":\"demo-db-password-2c81\"}"}'
seed "{\"name\":\"demo/signing-key\",\"binary\":\"$(printf 'demo-signing-key\0\1\2' | base64 -w0)\"}"
echo "seeded demo/api-key, demo/db (JSON) and demo/signing-key (binary)"

probe='{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probe","namespace":"default","annotations":{
"secretfetch.io/inject":"true","secretfetch.io/secret-probe":"demo/api-key"}},
"spec":{"securityContext":{"runAsUser":1000},"containers":[{"name":"app","image":"secretfetch.local/demo-app:dev"}]}}'
# wait_injecting waits until a server-side dry run of an opted-in pod comes
# back injected: the API server reaches a new webhook Service, or loads new
# policies, a moment after they are applied.
wait_injecting() {
  for i in $(seq 120); do
    out=$(kubectl create --dry-run=server -o jsonpath='{.spec.initContainers[0].name}' -f - <<<"$probe" 2>/dev/null || true)
    [ "$out" = secretfetch-init ] && return 0
    sleep 0.5
  done
  echo "$1 did not start injecting" >&2
  exit 1
}

if [ "$mode" = policy ] && [ "$minor" -lt 36 ]; then
  echo "the policy mode needs MutatingAdmissionPolicy (Kubernetes 1.36 or later); the API server reports $server" >&2
  exit 1
fi
if [ "$mode" = policy ]; then
  say "policy mode: no webhook; the API server injects"
  # A webhook from an earlier run would inject too: take its server away.
  kubectl delete mutatingwebhookconfiguration secretfetch --ignore-not-found
  kubectl -n secretfetch-system delete deployment,service,serviceaccount,poddisruptionbudget,networkpolicy \
    secretfetch-webhook --ignore-not-found
  kubectl apply -k manifests/overlays/local-policy
  wait_injecting "the MutatingAdmissionPolicy secretfetch-inject"
  echo "the policies are in force:"
  kubectl get mutatingadmissionpolicies,validatingadmissionpolicies -l app.kubernetes.io/part-of=secretfetch \
    -o custom-columns=KIND:.kind,NAME:.metadata.name --no-headers | sed 's/^/  /'
  echo "and no webhook runs: $(kubectl get mutatingwebhookconfigurations -o name | grep -c secretfetch || true) MutatingWebhookConfiguration, $(kubectl -n secretfetch-system get deployments -o name | wc -l) Deployment"
else
  say "webhook"
  # The policy mode from an earlier run would inject too: take it away
  # (where the API server serves MutatingAdmissionPolicy: not on 1.34).
  if kubectl api-resources --api-group=admissionregistration.k8s.io -o name | grep -q '^mutatingadmissionpolicies'; then
    kubectl delete mutatingadmissionpolicybinding,mutatingadmissionpolicy secretfetch-inject --ignore-not-found
  fi
  kubectl delete validatingadmissionpolicybinding,validatingadmissionpolicy secretfetch-policy-checks --ignore-not-found
  if [ ! -f manifests/overlays/ca-bundle/tls.crt ]; then
    go run ./hack/certs --out manifests/overlays/ca-bundle
  fi
  kubectl apply -k manifests/overlays/local
  kubectl -n secretfetch-system rollout status deployment/secretfetch-webhook --timeout=180s
  wait_injecting "the webhook"
  echo "the webhook is serving"
fi

say "demo Deployment"
demo=examples/demo.yaml envargs=(--env DB_PASSWORD)
if [ "$minor" -lt 35 ]; then
  # Without EnvFiles (1.35) the webhook denies secretfetch.io/env-<name>:
  # show its answer, then run the demo with files only.
  echo "Kubernetes $server has no EnvFiles; the webhook's answer to the demo's DB_PASSWORD:"
  kubectl create --dry-run=server -f - <<<"$(sed 's/"name":"probe"/"name":"env-probe"/; s/"secretfetch.io\/secret-probe":"demo\/api-key"/"secretfetch.io\/secret-db":"demo\/db","secretfetch.io\/env-db":"DB_PASSWORD"/' <<<"$probe")" 2>&1 | sed 's/^/  /' || true
  demo=$(mktemp --suffix .yaml)
  trap 'rm -f "$demo"' EXIT
  grep -vE 'secretfetch.io/(secret|key|env|file)-db-env|the environment variable DB_PASSWORD|EnvFiles|no file for it' examples/demo.yaml |
    sed 's/args: \[--dir, \/var\/run\/secrets\/app, --env, DB_PASSWORD\]/args: [--dir, \/var\/run\/secrets\/app]/' >"$demo"
  envargs=()
fi
existed=$(kubectl -n secretfetch-demo get deployment demo -o name 2>/dev/null || true)
kubectl apply -f "$demo"
# On a rerun, restart so that the pod fetches the freshly seeded secrets.
[ -n "$existed" ] && kubectl -n secretfetch-demo rollout restart deployment/demo
kubectl -n secretfetch-demo rollout status deployment/demo --timeout=120s
pod=$(kubectl -n secretfetch-demo get pods -l app=demo --sort-by=.metadata.creationTimestamp \
  -o jsonpath='{.items[-1].metadata.name}')

say "what the app sees in /var/run/secrets/app${envargs[*]:+ and in DB_PASSWORD} (pod $pod)"
kubectl -n secretfetch-demo exec "$pod" -c app -- /demo-app --once --dir /var/run/secrets/app "${envargs[@]}"

say "the app's log: names, sizes and hashes, no values"
kubectl -n secretfetch-demo logs "$pod" -c app

say "the init container's log: IDs, versions and sizes, no values"
kubectl -n secretfetch-demo logs "$pod" -c secretfetch-init

say "what the pod spec holds: references only"
kubectl -n secretfetch-demo get pod "$pod" -o jsonpath='{range .spec.initContainers[0].env[?(@.value)]}{.name}={.value}{"\n"}{end}'
kubectl -n secretfetch-demo get pod "$pod" -o jsonpath='{range .spec.initContainers[0].env[?(@.valueFrom.fieldRef)]}{.name} <- fieldRef {.valueFrom.fieldRef.fieldPath}{"\n"}{end}'
kubectl -n secretfetch-demo get pod "$pod" -o jsonpath='{range .spec.containers[0].env[?(@.valueFrom.fileKeyRef)]}{.name} <- fileKeyRef {.valueFrom.fileKeyRef}{"\n"}{end}'
if kubectl -n secretfetch-demo get pod "$pod" -o json | grep -qE 'demo-db-password-2c81|demo-api-key-7f3a9c'; then
  echo "the pod object contains a secret value" >&2
  exit 1
fi
echo "(no secret value appears anywhere in the pod object)"
echo
echo "Explore: eval \"\$(hack/local-cluster env)\"; kubectl -n secretfetch-demo describe pod $pod"
echo "Tear down: make cluster-down"
