package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	p := c.Port(8080)
	if p.Protocol != "auto" || !On(p.HTTP.AccessLog) || !On(p.HTTP.Metrics) || On(p.HTTP.RequestID) ||
		p.HTTP.Fault != nil || p.HTTP.RateLimit != nil || p.SniffTimeout.D() != 5*time.Second || p.TCP.IdleTimeout != 0 {
		t.Errorf("default port = %+v; want auto, access log and metrics on, the rest off", p)
	}
	if c.Stats.MaxPaths != 1000 {
		t.Errorf("stats.maxPaths = %d; want 1000", c.Stats.MaxPaths)
	}
	if e, err := Parse(nil); err != nil || e.Port(1).Protocol != "auto" {
		t.Errorf("Parse(empty) = %v, %v; want the defaults", e, err)
	}
}

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
default:
  protocol: auto
  http:
    requestId: true
ports:
  "3306":
    protocol: tcp
  "5432":
    tcp: {idleTimeout: 30m}
  "8080":
    protocol: http
    http:
      timeouts: {request: 2s}
      retries: {attempts: 2}
      fault: {abort: {status: 503, percent: 10}}
    routes:
    - prefix: /api
      fault: {delay: {fixed: 100ms, percent: 100}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Port(3306).Protocol; got != "tcp" {
		t.Errorf("port 3306 protocol = %q; want tcp", got)
	}
	if a, b := c.Port(3306).TCP.IdleTimeout.D(), c.Port(5432).TCP.IdleTimeout.D(); a != 0 || b != 30*time.Minute {
		t.Errorf("tcp.idleTimeout = %v and %v; want 0 (left out: never) and 30m", a, b)
	}
	if got := c.Port(9999); !On(got.HTTP.RequestID) {
		t.Errorf("an unlisted port did not get the default section: %+v", got)
	}
	p := c.Port(8080)
	if p.HTTP.Timeouts.Request.D() != 2*time.Second || p.HTTP.Timeouts.Connect.D() != 5*time.Second {
		t.Errorf("timeouts = %+v; want request 2s, connect defaulting to 5s", p.HTTP.Timeouts)
	}
	if r := p.HTTP.Retries; r.Backoff.D() != 25*time.Millisecond || r.Budget != 20 || strings.Join(r.On, ",") != "connect-failure,reset" ||
		strings.Join(r.Methods, ",") != "GET,HEAD,OPTIONS,TRACE,PUT,DELETE" {
		t.Errorf("retries = %+v; want the documented defaults (never POST)", r)
	}
	m := p.HTTP.Merged(p.Routes[0].HTTP)
	if m.Fault.Delay == nil || m.Fault.Abort != nil || m.Retries == nil {
		t.Errorf("route /api merged = %+v; want its own fault and the port's retries", m)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"default: {protocol: udp}", `default.protocol: "udp" is not a protocol (auto, http or tcp)`},
		{"default: {colour: blue}", "line 1: field colour not found in type config.Port"},
		{"ports: {\"70000\": {}}", `ports: "70000" is not a port (1-65535)`},
		{"ports: {\"8080\": {http: {fault: {abort: {status: 503, percent: 150}}}}}", "ports.8080.http.fault.abort.percent: 150 is not a percentage (0-100)"},
		{"default: {http: {fault: {abort: {status: 99, percent: 1}}}}", "default.http.fault.abort.status: 99 is not an HTTP status (200-599)"},
		{"default: {http: {timeouts: {request: fast}}}", `line 1: "fast" is not a duration (e.g. 250ms, 5s)`},
		{"default: {http: {authz: {rules: [{action: deny, clients: [10.0.0.0/33]}]}}}", `default.http.authz.rules[0].clients[0]: "10.0.0.0/33" is not a CIDR (e.g. 10.0.0.0/8, fd00::/8, 192.0.2.7)`},
		{"default: {http: {authz: {rules: [{action: maybe}]}}}", `default.http.authz.rules[0].action: "maybe" is not allow or deny`},
		{"default: {tcp: {authz: {rules: [{action: deny, paths: [/x]}]}}}", "default.tcp.authz.rules[0]: a TCP rule matches clients only, not methods or paths"},
		{"default: {http: {retries: {attempts: 0}}}", "default.http.retries.attempts: 0 is not between 1 and 10"},
		{"default: {http: {retries: {attempts: 1, on: [timeout]}}}", `default.http.retries.on: "timeout" is not a retry condition (connect-failure, reset, 503)`},
		{"default: {http: {headers: {request: {set: {\"bad header\": x}}}}}", `default.http.headers.request: "bad header" is not a header name`},
		{"default: {http: {rateLimit: {}}}", "default.http.rateLimit: set requestsPerSecond, perClient or both"},
		{"default: {http: {errorPages: {pages: {\"4x4\": /x}}}}", `default.http.errorPages.pages: "4x4" is not a status (404) or a class (5xx)`},
		{"default: {http: {circuitBreaker: {maxRequests: 0}}}", "default.http.circuitBreaker.maxRequests: 0 must be at least 1"},
		{"default: {routes: [{prefix: api}]}", `default.routes[0].prefix: "api" is not a path prefix (it must start with /)`},
		{"default: [1, 2]", "line 1: cannot unmarshal !!seq into config.Port"},
		{"default: {tcp: {idleTimeout: -1s}}", `line 1: "-1s" is not a duration (e.g. 250ms, 5s)`},
		{"default: {proxyProtocol: v3}", `default.proxyProtocol: "v3" is not a version (v1 or v2)`},
		{"outbound: {protocol: udp}", `outbound.protocol: "udp" is not a protocol (auto, http or tcp)`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse(%q) = %v; want %q", tc.in, err, tc.want)
			}
		})
	}
}

// The commented example in deploy/ is a valid config that uses every section.
func TestExampleFile(t *testing.T) {
	c, err := Load("../../deploy/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := c.Port(8080).HTTP
	if h.Retries == nil || h.Fault == nil || h.Headers == nil || h.RateLimit == nil || h.Authz == nil ||
		h.ErrorPages == nil || h.Circuit == nil || h.Timeouts == nil || !On(h.RequestID) || !On(h.Forwarded) ||
		!On(c.Default.HTTP.Tracing) || len(c.Port(8080).Routes) != 2 || c.Port(3306).TCP.Authz == nil || c.Port(3306).TCP.IdleTimeout.D() != 8*time.Hour {
		t.Errorf("deploy/config.yaml leaves a decoration out: %+v", c)
	}
}
