#!/usr/bin/env bash
# The assertions shared by the kind test (deploy/kind/test.sh) and the docker
# test (deploy/docker/test.sh), so that the only part of the kind path not
# tested where kind cannot run is kind itself. The caller defines:
#   POD_IP              the seed pod's address
#   client_curl ARGS    curl from a client in another pod (crosses PREROUTING)
#   node_curl ARGS      curl from the node, where the kubelet's probes come from
#   agent_logs          the agent's output (connection log and access log)
#   app_logs            the app's output (the Python server's log)
# and sources this file, then calls run_assertions.

passed=0 failed=0
check() { # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "PASS $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}

# eventually CMD...: CMD succeeds within 3 s (the agent writes its access
# log out within a second).
eventually() { for _ in $(seq 30); do "$@" && return 0; sleep 0.1; done; "$@"; }

status_of() { client_curl -s -o /dev/null -w '%{http_code}' "$@"; }

requests_through_agent() {
  for _ in 1 2 3; do [ "$(status_of "http://$POD_IP:8080/")" = 200 ] || return 1; done
}
access_log_has_requests() {
  [ "$(agent_logs | grep -c '"path":"/","protocol":"HTTP/1.1","status":200')" -ge 3 ] &&
    agent_logs | grep '"path":"/"' | grep -q '"request_id":"[0-9a-f-]\{36\}"'
}
metrics_count_requests() {
  local m; m=$(client_curl -s "http://$POD_IP:15000/metrics")
  local n; n=$(echo "$m" | awk '/^veneer_requests_total\{code="200",direction="inbound",flags="-",method="GET",port="8080"\}/ {print $2}')
  local c; c=$(echo "$m" | awk '/^veneer_tcp_connections_opened_total\{direction="inbound",port="8080"\}/ {print $2}')
  [ "${n:-0}" -ge 3 ] && [ "${c:-0}" -ge 3 ]
}
app_sees_the_agent() { app_logs | grep -q "^$POD_IP - - .*\"GET / HTTP/1.1\" 200"; }
denial_logged() { agent_logs | grep -q '"path":"/admin/secrets".*"response_flags":"DENY"'; }
authorization_denies() {
  [ "$(status_of "http://$POD_IP:8080/admin/secrets")" = 403 ] && eventually denial_logged
}
denied_never_reaches_app() { ! app_logs | grep -q '/admin'; }
probes_from_the_node() { [ "$(node_curl -s -o /dev/null -w '%{http_code}' "http://$POD_IP:8080/")" = 200 ]; }

run_assertions() {
  check "requests from another pod reach the app through the agent" requests_through_agent
  check "the agent's access log has them, with request ids" eventually access_log_has_requests
  check "the agent's /metrics count them" metrics_count_requests
  check "the app sees the agent (the pod's own address) as its peer" app_sees_the_agent
  check "an authorization rule answers 403 with flag DENY" authorization_denies
  check "denied requests never reach the app" denied_never_reaches_app
  check "the kubelet's probes, from the node, keep working" probes_from_the_node
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
