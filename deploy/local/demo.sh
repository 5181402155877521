#!/usr/bin/env bash
# The seed's scenario in a local pod: `python3 -m http.server 8080`, unmodified,
# in a network namespace; veneer-init captures its port; veneer-agent (UID 1337)
# forwards and decorates; requests come from a client namespace over a veth
# pair, through PREROUTING, as they would from another node. Run as root from
# the repository (make demo builds bin/ first).
set -euo pipefail
cd "$(dirname "$0")/../.."

POD=demo
BIN=$PWD/bin
WORK=$(mktemp -d /tmp/veneer-demo.XXXXXX)
chmod 755 "$WORK"
POD_IP=10.213.0.2
POD_IP6=fd00:7665:6e::2

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# (background processes are started with localpod directly, not through these
# functions, so that $! is the process itself and signals reach it)
in_pod() { "$BIN/localpod" exec $POD-pod "$@"; }
in_client() { "$BIN/localpod" exec $POD-client "$@"; }

cleanup() {
  [ -n "${FORWARD_PID:-}" ] && kill "$FORWARD_PID" 2>/dev/null || true
  [ -n "${AGENT_PID:-}" ] && kill "$AGENT_PID" 2>/dev/null || true
  [ -n "${APP_PID:-}" ] && kill "$APP_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  "$BIN/localpod" down $POD >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_for() { # wait_for WHAT CMD...: up to 10s
  local what=$1; shift
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; exit 1
}

"$BIN/localpod" down $POD >/dev/null 2>&1 || true # a pod left by an interrupted run

bold "1. A pod: network namespace $POD-pod ($POD_IP), clients in $POD-client"
"$BIN/localpod" up $POD

bold "2. The app, unmodified: python3 -m http.server 8080 (as nobody)"
mkdir -p "$WORK/site"
cat > "$WORK/site/index.html" <<'HTML'
<!DOCTYPE html><title>demo</title><h1>Hello from an unmodified Python server</h1>
HTML
chmod -R a+rX "$WORK/site"
PY=/usr/bin/python3
"$BIN/localpod" exec $POD-pod --uid 65534 -- $PY -m http.server 8080 --bind :: --directory "$WORK/site" >"$WORK/app.log" 2>&1 &
APP_PID=$!
# A bare TCP connect: a GET would show up in the app's log below.
wait_for "the app" in_pod -- bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080'

bold "3. veneer-init (the init container): capture inbound TCP to port 8080"
in_pod -- "$BIN/veneer-init" --inbound-ports 8080 2>"$WORK/init.log"
compact() { sed -E -e 's/"level":"[a-z]+","component":"veneer-[a-z]+",?//' -e 's/"time":"[^"]*",//' -e 's/,"time":"[^"]*"//' -e 's/^/  /'; }
compact < "$WORK/init.log"
echo "  the pod's nat table now holds:"
in_pod -- iptables-save -t nat | grep VENEER | sed 's/^/    /'

bold "4. veneer-agent (the sidecar), as UID 1337, with a few decorations configured"
cat > "$WORK/404.html" <<'HTML'
<!DOCTYPE html><title>not found</title><h1>veneer's own 404 page, instead of the app's</h1>
HTML
cat > "$WORK/config.yaml" <<YAML
default:
  protocol: auto            # sniff: HTTP is decorated, anything else passes as TCP
  http:
    requestId: true         # X-Request-Id on every request
    forwarded: true         # X-Forwarded-For: the real client, which REDIRECT hides from the app
    errorPages: {pages: {"404": $WORK/404.html}}
  routes:
  - prefix: /admin
    authz: {default: deny}  # 403 from the agent; the app never sees it
  - prefix: /chaos
    fault: {abort: {status: 503, percent: 100}}
YAML
chmod a+r "$WORK/config.yaml" "$WORK/404.html"
sed 's/^/    /' "$WORK/config.yaml"
"$BIN/localpod" exec $POD-pod --uid 1337 -- "$BIN/veneer-agent" --config "$WORK/config.yaml" \
  >"$WORK/access.log" 2>"$WORK/agent.log" &
AGENT_PID=$!
wait_for "the agent" in_pod -- curl -sf -o /dev/null http://127.0.0.1:15000/ready
echo "  veneer-init --validate: a probe to a captured port must come back from the agent"
in_pod -- "$BIN/veneer-init" --validate 2>&1 | grep validated | compact

bold "5. Requests from outside the pod (client namespace -> $POD_IP:8080)"
request() { # request URL: one line with the status and the start of the body
  printf '  curl %-34s -> ' "$1"
  in_client -- curl -s -w ' [HTTP %{http_code}]' "$1" | tr -d '\n' | sed -E 's/<title>[^<]*<\/title>//; s/<[^>]*>//g' | cut -c1-90
}
request "http://$POD_IP:8080/"
request "http://$POD_IP:8080/"
request "http://[$POD_IP6]:8080/"
request "http://$POD_IP:8080/no-such-page"
request "http://$POD_IP:8080/admin/secrets"
request "http://$POD_IP:8080/chaos"

bold "6. The access log: one JSON line per request (the agent's stdout, written out within a second; Envoy's fields)"
wait_for "the access log" grep -q '"path":"/chaos"' "$WORK/access.log"
sed -E -e 's/"start_time":"[^"]*",//' -e 's/,"(authority|upstream_host|x_forwarded_for|bytes_received)":"?[^,"]*"?//g' -e 's/^/  /' "$WORK/access.log"

bold "7. What the app saw: every peer is the agent at $POD_IP / $POD_IP6, inside the pod"
grep '"GET' "$WORK/app.log" | sed 's/^/  /'
echo "  (the denied and fault-injected requests never reached it)"

bold "8. The agent's /metrics (admin port 15000)"
in_pod -- curl -s http://127.0.0.1:15000/metrics | grep -E '^veneer_(requests_total|tcp_)' | sed 's/^/  /'

bold "9. The per-path profiler: /stats"
in_pod -- curl -s http://127.0.0.1:15000/stats | tr -d ' \n' | sed -e 's/},{/},\n  {/g' -e 's/^{"paths":\[/  /' -e 's/\]}$//'; echo

ADMIN=${DEMO_ADMIN:-127.0.0.1:15000}
bold "10. The admin page: a port-forward to the pod's 127.0.0.1:15000, as kubectl port-forward pod/NAME 15000 gives"
"$BIN/localpod" forward $POD-pod "$ADMIN" 127.0.0.1:15000 >/dev/null 2>"$WORK/forward.log" &
FORWARD_PID=$!
wait_for "the port-forward" curl -sf -o /dev/null "http://$ADMIN/ready"
echo "  open http://$ADMIN/ : live charts, the tap, the per-path profiler, the config ($(curl -s "http://$ADMIN/" | grep -o '<title>[^<]*' | cut -c8-))"
if [ -n "${DEMO_HOLD:-}" ]; then
  echo "  DEMO_HOLD=$DEMO_HOLD: the page stays up for $DEMO_HOLD s, with a request every 200 ms (a 503 from /chaos every fifth)"
  end=$((SECONDS + DEMO_HOLD)); i=0
  while [ $SECONDS -lt $end ]; do
    i=$((i + 1)); path=/; [ $((i % 5)) -eq 0 ] && path=/chaos
    in_client -- curl -s -o /dev/null "http://$POD_IP:8080$path" || true
    sleep 0.2
  done
else
  echo "  (DEMO_HOLD=60 make demo leaves it up for a minute)"
fi

bold "11. A port that is not captured is untouched: nothing listens on 9090, and the agent is not involved"
printf '  curl http://%s:9090/ -> ' "$POD_IP"
if in_client -- curl -s -o /dev/null "http://$POD_IP:9090/"; then echo "answered?!"; else echo "refused by the pod's kernel, as without veneer"; fi

bold "12. Tear-down: SIGTERM drains the agent; veneer-init --cleanup removes its rules"
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true; AGENT_PID=
grep -E '"(draining|stopped)"' "$WORK/agent.log" | compact
in_pod -- "$BIN/veneer-init" --cleanup 2>/dev/null
echo "  VENEER rules left in the pod: $(in_pod -- iptables-save -t nat | grep -c VENEER || true)"
