#!/usr/bin/env bash
# Roll out ONE part of the suite from a rendered overlay, leaving everything else
# untouched. For a database-owning service the order is: its config, account,
# Service, budgets, network policies and CNPG Cluster -> wait for the database ->
# its migration Job (the previous one is deleted: Jobs are immutable) -> wait for
# the migration -> its Deployment -> wait for the rollout.
#
# Usage: deploy/k8s/rollout.sh <overlay> <part>
#   overlay: dev | prod (a directory under deploy/k8s/overlays/)
#   part:    namespace | pki | nats | otel-collector | identity | ops | billing | repogen
#            | gateway | edge
# First install: namespace, pki (prod), nats, otel-collector, identity, ops, billing,
# repogen, gateway, edge (in that order). Needs kubectl pointing at the target cluster and,
# for a database-owning service, its Secret <svc>-db-runtime (README "Database roles").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
overlay="${1:?usage: rollout.sh <overlay> <part>}"
part="${2:?usage: rollout.sh <overlay> <part>}"
ns=zenops
timeout="${ROLLOUT_TIMEOUT:-600}"

[ -d "$here/overlays/$overlay" ] || { echo "no overlay $here/overlays/$overlay" >&2; exit 2; }

rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
kubectl kustomize "$here/overlays/$overlay" >"$rendered"

apply() { kubectl apply -f "$rendered" -l "$1"; }

wait_job() { # Complete -> 0, Failed or timeout -> 1 (kubectl wait cannot wait for either)
  local job="$1" deadline=$((SECONDS + timeout)) state
  while [ "$SECONDS" -lt "$deadline" ]; do
    state="$(kubectl -n "$ns" get job "$job" \
      -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')"
    case " $state " in
      *" Complete "*) echo "job/$job complete"; return 0 ;;
      *" Failed "*)
        echo "job/$job failed:" >&2
        kubectl -n "$ns" logs "job/$job" --tail=50 >&2 || true
        return 1 ;;
    esac
    sleep 5
  done
  echo "job/$job did not finish within ${timeout}s" >&2
  return 1
}

case "$part" in
  namespace)
    apply app.kubernetes.io/component=namespace
    ;;
  pki)  # prod: the internal CA's issuers (components/tls); needs cert-manager
    apply app.kubernetes.io/component=pki
    ;;
  nats)
    apply app.kubernetes.io/name=nats
    kubectl -n "$ns" rollout status statefulset/nats --timeout="${timeout}s"
    ;;
  otel-collector | gateway | edge)
    apply "app.kubernetes.io/name=$part"
    kubectl -n "$ns" rollout status "deployment/$part" --timeout="${timeout}s"
    ;;
  identity | ops | billing | repogen)
    # The runtime role's Secret is created out of band (README "Database roles"): without
    # it the role gets no password and the new pods wait for their volume until the timeout.
    kubectl -n "$ns" get secret "$part-db-runtime" >/dev/null || {
      echo "create the Secret $part-db-runtime first (deploy/k8s/README.md, Database roles)" >&2
      exit 1
    }
    # 1. everything but the Deployment and the migration Job
    kubectl -n "$ns" delete job "$part-migrate" --ignore-not-found --wait=true
    apply "app.kubernetes.io/name=$part,app.kubernetes.io/component notin (server,migration)"
    kubectl -n "$ns" wait --for=condition=Ready "cluster.postgresql.cnpg.io/$part-db" \
      --timeout="${timeout}s"
    # 2. migrations, as their own step
    apply "app.kubernetes.io/name=$part,app.kubernetes.io/component=migration"
    wait_job "$part-migrate"
    # 3. the new version
    apply "app.kubernetes.io/name=$part,app.kubernetes.io/component=server"
    kubectl -n "$ns" rollout status "deployment/$part" --timeout="${timeout}s"
    ;;
  *)
    echo "unknown part '$part'" >&2
    exit 2
    ;;
esac
