#!/usr/bin/env bash
# The kind test's assertions against a pod made of docker containers, for
# machines where kind cannot run: a holder container owns the network
# namespace (as the pause container does), and veneer-init, the agent and the
# seed's app join it with exactly the users, capabilities and read-only
# settings of deploy/kubernetes/python-native.yaml, in its order (init, then
# the agent ready, then the app). The client is another container on the
# bridge, so its traffic enters the pod through PREROUTING.
set -euo pipefail
cd "$(dirname "$0")/../.."

P=veneer-dtest
cleanup() { docker rm -f $P-pod $P-agent $P-app >/dev/null 2>&1 || true; rm -rf "${CFG:-}"; }
trap cleanup EXIT
cleanup

deploy/docker/standins.sh
# The agent's config, from the ConfigMap in the manifest.
CFG=$(mktemp -d); chmod 755 "$CFG"
awk '/config.yaml: \|/ {on=1; next} on && /^[^ ]/ {on=0} on {sub(/^    /, ""); print}' deploy/kubernetes/python-app.yaml > "$CFG/config.yaml"
chmod 644 "$CFG/config.yaml"

docker run -d --name $P-pod --init debian:bookworm-slim sleep infinity >/dev/null
POD_IP=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' $P-pod)
echo "pod: $POD_IP"

# veneer-init: root, NET_ADMIN and NET_RAW only, read-only root, /run writable.
docker run --rm --network container:$P-pod --user 0 --cap-drop ALL --cap-add NET_ADMIN --cap-add NET_RAW \
  --security-opt no-new-privileges --read-only --tmpfs /run veneer-init:dev --inbound-ports 8080
# The agent: 1337:1337, no capabilities, read-only root, the config mounted.
docker run -d --name $P-agent --network container:$P-pod --user 1337:1337 --cap-drop ALL \
  --security-opt no-new-privileges --read-only -v "$CFG:/etc/veneer:ro" veneer-agent:dev --config /etc/veneer/config.yaml >/dev/null
for _ in $(seq 50); do
  docker run --rm veneer-test-client curl -sf -o /dev/null "http://$POD_IP:15000/ready" && break; sleep 0.2
done
# The app, unmodified.
docker run -d --name $P-app --network container:$P-pod -w /tmp python:3.12-slim python -m http.server 8080 >/dev/null
for _ in $(seq 50); do
  docker exec $P-pod bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080' 2>/dev/null && break; sleep 0.2
done

client_curl() { docker run --rm veneer-test-client curl "$@"; }
node_curl() { curl "$@"; } # this machine is the node: docker0 enters the pod through PREROUTING
agent_logs() { docker logs $P-agent 2>&1; }
app_logs() { docker logs $P-app 2>&1; }
# shellcheck source=../test/assertions.sh
. deploy/test/assertions.sh
run_assertions
