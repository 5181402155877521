package decor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
	"github.com/veneermesh/veneer/pkg/decor/accesslog"
	"github.com/veneermesh/veneer/pkg/decor/authz"
	"github.com/veneermesh/veneer/pkg/decor/fault"
	"github.com/veneermesh/veneer/pkg/decor/retry"
	"github.com/veneermesh/veneer/pkg/decor/timeout"
)

// Each module decodes, checks and fills its own block when the config is
// loaded; what a port leaves out is as the module has it.
func TestSchemaDefaults(t *testing.T) {
	c, err := config.Parse([]byte(`
ports:
  "8080":
    http:
      timeouts: {request: 2s}
      retries: {attempts: 2}
      fault: {abort: {status: 503, percent: 10}}
    routes:
    - prefix: /api
      fault: {delay: {fixed: 100ms, percent: 100}}
`), decor.Schema())
	if err != nil {
		t.Fatal(err)
	}
	d := c.Default.HTTP
	if a, _ := config.Get[accesslog.Config](d, accesslog.Key); a.Off || a.Fields != nil || !config.On(d, "metrics") || config.On(d, "requestId") || config.On(d, "tracing") || config.On(d, "forwarded") {
		t.Errorf("default section %v; want access log and metrics on, the other switches off", d)
	}
	p := c.Port(8080)
	if to, _ := config.Get[timeout.Config](p.HTTP, timeout.Key); to.Request.D() != 2*time.Second || to.Connect.D() != 5*time.Second || to.Idle.D() != 5*time.Minute {
		t.Errorf("timeouts = %+v; want request 2s, connect defaulting to 5s, idle to 5m", to)
	}
	if r, _ := config.Get[retry.Config](p.HTTP, retry.Key); r.Backoff.D() != 25*time.Millisecond || r.Budget != 20 ||
		strings.Join(r.On, ",") != "connect-failure,reset" || strings.Join(r.Methods, ",") != "GET,HEAD,OPTIONS,TRACE,PUT,DELETE" {
		t.Errorf("retries = %+v; want the documented defaults (never POST)", r)
	}
	m := p.HTTP.Merged(p.Routes[0].HTTP)
	if f, _ := config.Get[fault.Config](m, fault.Key); f.Delay == nil || f.Abort != nil {
		t.Errorf("route /api's fault = %+v; want its own, whole", f)
	}
	if _, ok := m[retry.Key]; !ok {
		t.Error("route /api lost the port's retries")
	}
}

func TestSchemaErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ports: {\"8080\": {http: {fault: {abort: {status: 503, percent: 150}}}}}", "ports.8080.http.fault.abort.percent: 150 is not a percentage (0-100)"},
		{"default: {http: {fault: {abort: {status: 99, percent: 1}}}}", "default.http.fault.abort.status: 99 is not an HTTP status (200-599)"},
		{"default: {http: {fault: {delay: {percent: 1}}}}", "default.http.fault.delay.fixed: a delay needs a duration (e.g. 100ms)"},
		{"default: {http: {fault: {abort: {status: 503}, colour: red}}}", "default.http.fault: line 1: field colour not found in type fault.Config"},
		{"default: {http: {timeouts: {request: fast}}}", `default.http.timeouts: line 1: "fast" is not a duration (e.g. 250ms, 5s)`},
		{"default: {http: {authz: {rules: [{action: deny, clients: [10.0.0.0/33]}]}}}", `default.http.authz.rules[0].clients[0]: "10.0.0.0/33" is not a CIDR (e.g. 10.0.0.0/8, fd00::/8, 192.0.2.7)`},
		{"default: {http: {authz: {rules: [{action: maybe}]}}}", `default.http.authz.rules[0].action: "maybe" is not allow or deny`},
		{"default: {http: {authz: {default: perhaps}}}", `default.http.authz.default: "perhaps" is not allow or deny`},
		{"default: {http: {authz: {rules: [{action: deny, methods: [get]}]}}}", `default.http.authz.rules[0].methods[0]: "get" is not an HTTP method`},
		{"default: {tcp: {authz: {rules: [{action: deny, paths: [/x]}]}}}", "default.tcp.authz.rules[0]: a TCP rule matches clients and principals only, not methods or paths"},
		{"default: {http: {retries: {attempts: 0}}}", "default.http.retries.attempts: 0 is not between 1 and 10"},
		{"default: {http: {retries: {attempts: 1, on: [timeout]}}}", `default.http.retries.on: "timeout" is not a retry condition (connect-failure, reset, 503)`},
		{"default: {http: {retries: {attempts: 1, budget: -5}}}", "default.http.retries.budget: -5 is not a percentage (0-100)"},
		{"default: {http: {headers: {request: {set: {\"bad header\": x}}}}}", `default.http.headers.request: "bad header" is not a header name`},
		{"default: {http: {rateLimit: {}}}", "default.http.rateLimit: set requestsPerSecond, perClient or both"},
		{"default: {http: {rateLimit: {perClient: {requestsPerSecond: 0}}}}", "default.http.rateLimit.perClient.requestsPerSecond: 0 must be positive"},
		{"default: {http: {errorPages: {pages: {\"4x4\": /x}}}}", `default.http.errorPages.pages: "4x4" is not a status (404) or a class (5xx)`},
		{"default: {http: {circuitBreaker: {maxRequests: 0}}}", "default.http.circuitBreaker.maxRequests: 0 must be at least 1"},
		{"default: {http: {accessLog: sometimes}}", `default.http.accessLog: line 1: "sometimes" is not true, false or a mapping of settings (fields, requestHeaders, responseHeaders)`},
		{"default: {http: {accessLog: {fields: [method, verb]}}}", `default.http.accessLog.fields[1]: "verb" is not a field (start_time, method, path, protocol, status, response_flags, bytes_received, bytes_sent, duration_ms, upstream_service_time_ms, x_forwarded_for, user_agent, request_id, authority, direction, upstream_host, client_address, upstream_failure, tls, peer_principal, trace_id, route)`},
		{"default: {http: {accessLog: {fields: [path, path]}}}", `default.http.accessLog.fields[1]: "path" is listed twice`},
		{"default: {http: {accessLog: {fields: []}}}", "default.http.accessLog.fields: an empty list and no header fields leave nothing to log: say accessLog: false"},
		{"default: {http: {accessLog: {format: json}}}", "default.http.accessLog: line 1: field format not found in type accesslog.Config"},
		{"default: {http: {accessLog: {requestHeaders: {status: X-Status}}}}", `default.http.accessLog.requestHeaders: "status" is a field of the line already: name it otherwise`},
		{"default: {http: {accessLog: {requestHeaders: {tenant: X-Tenant}, responseHeaders: {tenant: X-T}}}}", `default.http.accessLog.responseHeaders: field "tenant" is named twice`},
		{"default: {http: {accessLog: {requestHeaders: {tenant: \"X Tenant\"}}}}", `default.http.accessLog.requestHeaders.tenant: "X Tenant" is not a header name`},
		{"default: {http: {accessLog: {requestHeaders: {\"a b\": X-Tenant}}}}", `default.http.accessLog.requestHeaders: "a b" is not a field name (letters, digits, '_', '-' and '.', up to 64)`},
		{"default: {http: {accessLog: {requestHeaders: [X-Tenant]}}}", "default.http.accessLog: line 1: not a mapping of field names to header names"},
		{"default: {routes: [{prefix: /a, ratelimit: {requestsPerSecond: 1}}]}", `default.routes[0]: line 1: "ratelimit" is not a setting here (accessLog, metrics, requestId, tracing, authz, rateLimit, fault, circuitBreaker, errorPages, headers, forwarded, timeouts, retries)`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.in), decor.Schema())
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse(%q) = %v; want %q", tc.in, err, tc.want)
			}
		})
	}
}

// The commented example in deploy/ is a valid config that uses every block.
func TestExampleFile(t *testing.T) {
	c, err := config.Load("../../deploy/config.yaml", decor.Schema())
	if err != nil {
		t.Fatal(err)
	}
	h := c.Port(8080).HTTP
	for _, k := range decor.Schema().HTTP {
		if _, ok := h[k.Key]; !ok && !config.On(c.Default.HTTP, k.Key) {
			t.Errorf("deploy/config.yaml leaves %s out", k.Key)
		}
	}
	if len(c.Port(8080).Routes) != 2 || c.Port(3306).TCP.Authz == nil || c.Port(3306).TCP.IdleTimeout.D() != 8*time.Hour {
		t.Errorf("deploy/config.yaml leaves routes or the TCP settings out: %+v", c)
	}
	if a := config.ValueOf[authz.TCPConfig](c.Port(3306).TCP.Authz); len(a.Rules) == 0 {
		t.Errorf("port 3306's tcp authz = %+v; want its rules", a)
	}
}
