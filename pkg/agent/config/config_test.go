package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// thing is a module's block for the frame's tests: pkg/decor's Schema has
// the real ones, tested there.
type thing struct {
	N   int `yaml:"n" json:"n"` // 0 means 1
	Sub *struct {
		M []int `yaml:"m" json:"m"`
	} `yaml:"sub" json:"sub,omitempty"`
	ByName map[string]struct {
		V string `yaml:"v" json:"v"`
	} `yaml:"byName" json:"byName,omitempty"`
}

func (t *thing) Provision() error {
	if t.N < 0 {
		return Errorf("n", "%d is negative", t.N)
	}
	if t.N > 100 {
		return Errorf("", "too much")
	}
	if t.N == 0 {
		t.N = 1
	}
	return nil
}

type tcpThing struct {
	Allow bool `yaml:"allow" json:"allow"`
}

func (*tcpThing) Provision() error { return nil }

var schema = Schema{
	HTTP:     []Kind{Switch("on", true), Switch("off", false), BlockOf[thing]("thing")},
	TCPAuthz: BlockOf[tcpThing]("authz"),
}

func TestDefault(t *testing.T) {
	c := Default(schema)
	p := c.Port(8080)
	if p.Protocol != "auto" || p.SniffTimeout.D() != 5*time.Second || p.TCP.IdleTimeout != 0 || p.TCP.Authz != nil {
		t.Errorf("default port = %+v; want auto, a 5s sniff, no TCP settings", p)
	}
	if !On(p.HTTP, "on") || On(p.HTTP, "off") {
		t.Errorf("switches: on=%v off=%v; want each as its kind has it when left out", On(p.HTTP, "on"), On(p.HTTP, "off"))
	}
	if _, ok := Get[thing](p.HTTP, "thing"); ok {
		t.Error("a block left out is there")
	}
	if c.Stats.MaxPaths != 1000 {
		t.Errorf("stats.maxPaths = %d; want 1000", c.Stats.MaxPaths)
	}
	if e, err := Parse(nil, schema); err != nil || e.Port(1).Protocol != "auto" || !On(e.Port(1).HTTP, "on") {
		t.Errorf("Parse(empty) = %v, %v; want the defaults", e, err)
	}
}

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
default:
  protocol: auto
  http:
    off: true
ports:
  "3306":
    protocol: tcp
    tcp: {authz: {allow: true}}
  "5432":
    tcp: {idleTimeout: 30m}
  "8080":
    protocol: http
    http:
      on: false
      thing: {sub: {m: [1, 2]}}
    routes:
    - prefix: /api
      thing: {n: 5}
    - prefix: /web
      off: true
      thing:
`), schema)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Port(3306); got.Protocol != "tcp" || !ValueOf[tcpThing](got.TCP.Authz).Allow {
		t.Errorf("port 3306 = %+v; want tcp, its authz block decoded", got)
	}
	if a, b := c.Port(3306).TCP.IdleTimeout.D(), c.Port(5432).TCP.IdleTimeout.D(); a != 0 || b != 30*time.Minute {
		t.Errorf("tcp.idleTimeout = %v and %v; want 0 (left out: never) and 30m", a, b)
	}
	if got := c.Port(9999); !On(got.HTTP, "off") || !On(got.HTTP, "on") {
		t.Errorf("an unlisted port did not get the default section: %+v", got)
	}
	p := c.Port(8080)
	if th, ok := Get[thing](p.HTTP, "thing"); !ok || th.N != 1 || len(th.Sub.M) != 2 {
		t.Errorf("port 8080's thing = %+v, %v; want it decoded with n defaulting to 1", th, ok)
	}
	if On(p.HTTP, "on") || On(p.HTTP, "off") {
		t.Error("a port's section took the default section's blocks; it replaces it whole")
	}
	m := p.HTTP.Merged(p.Routes[0].HTTP)
	if th, _ := Get[thing](m, "thing"); th.N != 5 || th.Sub != nil {
		t.Errorf("route /api merged: thing = %+v; want the route's block whole, not the port's", th)
	}
	if m := p.HTTP.Merged(p.Routes[1].HTTP); !On(m, "off") || On(m, "on") {
		t.Error("route /web merged: want its own switch and the port's others")
	} else if th, _ := Get[thing](m, "thing"); th.Sub == nil {
		t.Error("route /web's thing with no value: want it left out, the port's inherited")
	}
	if th, _ := Get[thing](p.HTTP, "thing"); th.N != 1 {
		t.Error("merging a route changed the port's section")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"default: {protocol: udp}", `default.protocol: "udp" is not a protocol (auto, http or tcp)`},
		{"default: {colour: blue}", "line 1: field colour not found in type config.Port"},
		{"ports: {\"70000\": {}}", `ports: "70000" is not a port (1-65535)`},
		{"default: {routes: [{prefix: api}]}", `default.routes[0].prefix: "api" is not a path prefix (it must start with /)`},
		{"default: {routes: [{prefix: /a}, {prefix: /a}]}", `default.routes[1].prefix: "/a" is listed twice`},
		{"default: [1, 2]", "line 1: cannot unmarshal !!seq into config.Port"},
		{"default: {tcp: {idleTimeout: -1s}}", `line 1: "-1s" is not a duration (e.g. 250ms, 5s)`},
		{"default: {proxyProtocol: v3}", `default.proxyProtocol: "v3" is not a version (v1 or v2)`},
		{"outbound: {protocol: udp}", `outbound.protocol: "udp" is not a protocol (auto, http or tcp)`},
		{"ports: {\"8080\": {mtls: on}}", `ports.8080.mtls: "on" is not a mode (off, permissive or strict)`},
		{"outbound: {mtls: strict}", `outbound.mtls: "strict": mtls is a mode of inbound ports; the destinations to reach with mTLS are listed in mesh.peers`},
		{"mesh: {peers: [{ports: [80]}]}", `mesh.peers[0].cidrs: none: a peer is the addresses it is at (e.g. [10.96.0.0/12])`},
		{"mesh: {peers: [{cidrs: [10.0.0.0/33]}]}", `mesh.peers[0].cidrs[0]: "10.0.0.0/33" is not a CIDR (e.g. 10.96.0.0/12, fd00::/8, 10.0.0.7)`},
		{"mesh: {peers: [{cidrs: [10.0.0.0/8], ports: [0]}]}", `mesh.peers[0].ports[0]: 0 is not a port (1-65535)`},
		{"mesh: {peers: [{cidrs: [10.0.0.0/8], ports: [70000]}]}", "line 1: cannot unmarshal !!int `70000` into uint16"},
		{"mesh: {peers: [{cidrs: [10.0.0.0/8], principals: [web]}]}", `mesh.peers[0].principals[0]: "web" is not a SPIFFE ID (e.g. spiffe://cluster.local/ns/shop/sa/web): scheme is missing or invalid`},
		{"stats: {maxPaths: -1}", "stats.maxPaths: -1 is negative"},
		// The blocks: a key no module owns, and each module's own errors,
		// named by the block's path.
		{"default:\n  http:\n    thnig: {}", `default.http: line 3: "thnig" is not a setting here (on, off, thing)`},
		{"default: {routes: [{prefix: /a, colour: blue}]}", `default.routes[0]: line 1: "colour" is not a setting here (on, off, thing)`},
		{"default: {http: {thing: {m: 1}}}", "default.http.thing: line 1: field m not found in type config.thing"},
		{"default: {http: {thing: {sub: {n: 1}}}}", "default.http.thing: line 1: field n not found in type struct { M []int \"yaml:\\\"m\\\" json:\\\"m\\\"\" }"},
		{"default: {http: {thing: {byName: {a: {w: 1}}}}}", "default.http.thing: line 1: field w not found in type struct { V string \"yaml:\\\"v\\\" json:\\\"v\\\"\" }"},
		{"default: {http: {thing: {n: -1}}}", "default.http.thing.n: -1 is negative"},
		{"default: {http: {thing: {n: 101}}}", "default.http.thing: too much"},
		{"default: {http: {thing: {n: x}}}", "default.http.thing: line 1: cannot unmarshal !!str `x` into int"},
		{"default: {http: {on: maybe}}", "default.http.on: line 1: cannot unmarshal !!str `maybe` into bool"},
		{"ports: {\"80\": {routes: [{prefix: /a, thing: {n: -2}}]}}", "ports.80.routes[0].thing.n: -2 is negative"},
		{"default: {tcp: {authz: {deny: true}}}", "default.tcp.authz: line 1: field deny not found in type config.tcpThing"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), schema)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse(%q) = %v; want %q", tc.in, err, tc.want)
			}
		})
	}
}

// GET /config shows each block as its module has it, defaults filled, and a
// route's blocks beside its prefix, as the file has them.
func TestJSON(t *testing.T) {
	c, err := Parse([]byte("default: {http: {thing: {}}, routes: [{prefix: /a, off: true}]}"), schema)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c.Default)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"thing":{"n":1}`, `"on":true`, `"routes":[{"off":true,"prefix":"/a"}]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s; want %s in it", b, want)
		}
	}
}
