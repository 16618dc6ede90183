#!/usr/bin/env bash
# A node that will not come back (docs/deploy.md, "A node that will not come back"):
#
#   deploy/k3s/node-lost.sh <node> --yes
#
# Checks that the node is NotReady, taints it node.kubernetes.io/out-of-service (Kubernetes 1.28+,
# K3s v1.28+), which makes Kubernetes delete its pods at once and detach their volumes, then waits
# for the fanwatch StatefulSet pods that were there (the connector, NATS, InfluxDB, Alertmanager in
# namespace fanwatch; Prometheus in fanwatch-monitoring) to run elsewhere, and says which did not
# and why. Only for a node that is off: a node that is
# merely cut off the network and still running would have the same pods writing twice.
#
# Once the node is repaired and back, or deleted (kubectl delete node <node>), remove the taint:
#   kubectl taint nodes <node> node.kubernetes.io/out-of-service-
#
# NODE_LOST_TIMEOUT (seconds, default 300) bounds the wait; NODE_LOST_INTERVAL (default 5) paces it.
set -euo pipefail

usage() {
  echo "usage: $0 <node> --yes   (the node must be NotReady and powered off)" >&2
  exit 2
}
[ $# -eq 2 ] && [ "$2" = "--yes" ] || usage
node=$1
namespaces="fanwatch fanwatch-monitoring"
taint=node.kubernetes.io/out-of-service
timeout=${NODE_LOST_TIMEOUT:-300}
interval=${NODE_LOST_INTERVAL:-5}

ready=$(kubectl get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
if [ "$ready" = "True" ]; then
  echo "node-lost: $node is Ready: nothing to do (drain it instead: kubectl drain $node --ignore-daemonsets --delete-emptydir-data)" >&2
  exit 1
fi
echo "node-lost: $node is NotReady (Ready=$ready)"

# The StatefulSet pods there, as <namespace>/<pod>: Kubernetes recreates them only once the old
# ones are gone for sure.
stranded=""
for namespace in $namespaces; do
  stranded="$stranded $(kubectl -n "$namespace" get pods --field-selector "spec.nodeName=$node" \
    -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.ownerReferences[0].kind}{"\n"}{end}' |
    awk -v ns="$namespace" '$2 == "StatefulSet" { print ns "/" $1 }')"
done
stranded=$(echo $stranded)

kubectl taint nodes "$node" "$taint=nodeshutdown:NoExecute" --overwrite >/dev/null
echo "node-lost: tainted $node $taint=nodeshutdown:NoExecute: its pods are deleted and their volumes detached"

if [ -z "$stranded" ]; then
  echo "node-lost: no fanwatch StatefulSet pod was on $node"
else
  echo "node-lost: waiting up to ${timeout}s for" $stranded
fi

# Each pod's (<namespace>/<pod>) place once it is back: "<node>/<phase>/<ready>" (no node while it
# is not scheduled), or nothing while it does not exist.
where() {
  kubectl -n "${1%%/*}" get pod "${1#*/}" --ignore-not-found \
    -o jsonpath='{.spec.nodeName}/{.status.phase}/{.status.conditions[?(@.type=="Ready")].status}'
}

deadline=$((SECONDS + timeout))
pending=$stranded
while [ -n "$pending" ]; do
  still=""
  for pod in $pending; do
    IFS=/ read -r on phase ok <<<"$(where "$pod")" || true
    if [ -n "${on:-}" ] && [ "$on" != "$node" ] && [ "${phase:-}" = "Running" ] && [ "${ok:-}" = "True" ]; then
      echo "node-lost: $pod runs on $on and is Ready"
    else
      still="$still $pod"
    fi
  done
  pending=${still# }
  [ -z "$pending" ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    for pod in $pending; do
      IFS=/ read -r on phase ok <<<"$(where "$pod")" || true
      echo "node-lost: $pod is not back (${phase:-not recreated}${on:+ on $on}): on local-path its volume stays on $node;" \
        "restore it from a backup or bring $node back (docs/deploy.md, \"A node that will not come back\")" >&2
    done
    echo "node-lost: remove the taint once $node is back or deleted: kubectl taint nodes $node $taint-" >&2
    exit 1
  fi
  sleep "$interval"
done
echo "node-lost: done. Remove the taint once $node is back or deleted: kubectl taint nodes $node $taint-"
