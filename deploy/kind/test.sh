#!/usr/bin/env bash
# The seed's scenario in a kind cluster: build and load both images, deploy
# python-native.yaml (or python-classic.yaml: VARIANT=classic), and from a
# separate client pod (not kubectl port-forward, whose traffic never crosses
# the pod's PREROUTING) run the assertions shared with deploy/docker/test.sh.
# Needs kind, kubectl and docker; the cluster is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${CLUSTER:-veneer}
VARIANT=${VARIANT:-native}
KEEP=${KEEP:-}
for tool in kind kubectl docker; do
  command -v $tool >/dev/null || { echo "kind-test: $tool is not installed" >&2; exit 1; }
done
cleanup() { [ -n "$KEEP" ] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml --wait 120s
kind load docker-image --name "$CLUSTER" veneer-init:dev veneer-agent:dev
kubectl apply -f "deploy/kubernetes/python-$VARIANT.yaml"
# Ready means the app's own readiness probe passed: the kubelet's probes go
# through the captured port and the agent.
kubectl rollout status deployment/python --timeout=180s
kubectl run client --image=curlimages/curl:8.10.1 --restart=Never --command -- sleep 3600
kubectl wait --for=condition=Ready pod/client --timeout=120s

POD=$(kubectl get pod -l app=python -o jsonpath='{.items[0].metadata.name}')
POD_IP=$(kubectl get pod "$POD" -o jsonpath='{.status.podIP}')
NODE=$(kubectl get pod "$POD" -o jsonpath='{.spec.nodeName}')
client_curl() { kubectl exec client -- curl "$@"; }
node_curl() { docker exec "$NODE" curl "$@"; }
agent_logs() { kubectl logs "$POD" -c veneer-agent; }
app_logs() { kubectl logs "$POD" -c python; }
# shellcheck source=../test/assertions.sh
. deploy/test/assertions.sh
run_assertions
