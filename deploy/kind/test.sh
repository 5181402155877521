#!/usr/bin/env bash
# The Kubernetes tests (test/kubernetes, the ones make k8s-test runs against
# a local cluster) against a kind cluster: the same manifests and
# assertions, with the images loaded by `kind load image-archive`. The tests
# that need the node's own network namespace (load through a ClusterIP from
# the node, the runtime's ctr) skip and say so. Needs kind, kubectl and
# docker; the cluster is deleted at the end unless KEEP is set.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${CLUSTER:-veneer}
KEEP=${KEEP:-}
for tool in kind kubectl docker; do
  command -v $tool >/dev/null || { echo "kind-test: $tool is not installed" >&2; exit 1; }
done
cleanup() { [ -n "$KEEP" ] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml --wait 120s
kubeconfig=$(mktemp)
kind get kubeconfig --name "$CLUSTER" > "$kubeconfig"
VENEER_K8S_TEST=1 VENEER_KUBECONFIG="$kubeconfig" VENEER_KIND_CLUSTER="$CLUSTER" \
  go test -count=1 -v -timeout 20m ./test/kubernetes
