// Package authz allows and denies traffic by method, path prefix, client
// CIDR and peer principal (the SPIFFE ID an mTLS handshake verified). Denied HTTP gets 403 (flag DENY); denied TCP is reset before the app
// is contacted. Either way, denied traffic never reaches the app.
//
//	# config
//	authz:
//	  default: allow
//	  rules:
//	  - {action: deny, methods: [DELETE], paths: [/admin]}
//	  - {action: deny, clients: [192.0.2.0/24]}
//	  - {action: allow, principals: ["spiffe://cluster.local/ns/shop/*"]}
//
// Metrics: denied requests count in veneer_requests_total with flags="DENY".
package authz

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
	"github.com/veneermesh/veneer/pkg/mesh/identity"
)

// Key is the block's key, in an http section and in a tcp one.
const Key = "authz"

// Block is the kind of an http section's authz; TCPBlock of a tcp
// section's, whose rules match clients only.
var (
	Block    = config.BlockOf[Config](Key)
	TCPBlock = config.BlockOf[TCPConfig](Key)
)

// Config allows and denies by method, path prefix and client CIDR. The
// first matching rule decides; with none matching, Default does.
type Config struct {
	// Default decides when no rule matches: allow or deny; "" means allow.
	Default string `yaml:"default" json:"default"`
	// Rules, tried in order. None: Default decides for everything.
	Rules []Rule `yaml:"rules" json:"rules"`
}

// Rule matches a request when every list it sets matches; an empty list
// matches anything.
type Rule struct {
	Action  string   `yaml:"action" json:"action"` // allow or deny; no default
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	Paths   []string `yaml:"paths" json:"paths,omitempty"`     // path prefixes, each starting with /
	Clients []string `yaml:"clients" json:"clients,omitempty"` // CIDRs, or bare addresses (a /32 or /128)
	// Principals are SPIFFE IDs, exact or ending in /* (every ID under
	// that path): the peer's, verified by the mTLS handshake. A plaintext
	// connection has none, so a rule with principals never matches it.
	Principals []string `yaml:"principals" json:"principals,omitempty"`
}

// TCPConfig is a tcp section's authz: a Config whose rules match clients
// and principals only (a connection has no method or path).
type TCPConfig Config

func (c *Config) Provision() error    { return c.provision(true) }
func (c *TCPConfig) Provision() error { return (*Config)(c).provision(false) }

func (c *Config) provision(http bool) error {
	switch c.Default {
	case "":
		c.Default = "allow"
	case "allow", "deny":
	default:
		return config.Errorf("default", "%q is not allow or deny", c.Default)
	}
	for i, r := range c.Rules {
		rp := fmt.Sprintf("rules[%d]", i)
		if r.Action != "allow" && r.Action != "deny" {
			return config.Errorf(rp+".action", "%q is not allow or deny", r.Action)
		}
		if !http && (len(r.Methods) > 0 || len(r.Paths) > 0) {
			return config.Errorf(rp, "a TCP rule matches clients and principals only, not methods or paths")
		}
		for j, m := range r.Methods {
			if !http1.Method(m) {
				return config.Errorf(fmt.Sprintf("%s.methods[%d]", rp, j), "%q is not an HTTP method", m)
			}
		}
		for j, p := range r.Paths {
			if !strings.HasPrefix(p, "/") {
				return config.Errorf(fmt.Sprintf("%s.paths[%d]", rp, j), "%q is not a path prefix (it must start with /)", p)
			}
		}
		for j, cl := range r.Clients {
			if _, err := ParseCIDR(cl); err != nil {
				return config.Errorf(fmt.Sprintf("%s.clients[%d]", rp, j), "%q is not a CIDR (e.g. 10.0.0.0/8, fd00::/8, 192.0.2.7)", cl)
			}
		}
		for j, p := range r.Principals {
			if _, err := identity.ParsePattern(p); err != nil {
				return config.Errorf(fmt.Sprintf("%s.principals[%d]", rp, j), "%v", err)
			}
		}
	}
	return nil
}

// ParseCIDR parses a CIDR, or a bare address as a /32 or /128.
var ParseCIDR = config.ParseCIDR

// Authz is a compiled rule list.
type Authz struct {
	allowByDefault bool
	rules          []rule
}

type rule struct {
	allow      bool
	methods    []string
	paths      []string
	clients    []netip.Prefix
	principals []identity.Pattern
}

// New compiles cfg, which Provision has checked.
func New(cfg Config) *Authz {
	a := &Authz{allowByDefault: cfg.Default != "deny"}
	for _, r := range cfg.Rules {
		cr := rule{allow: r.Action == "allow", methods: r.Methods, paths: r.Paths}
		for _, c := range r.Clients {
			p, _ := ParseCIDR(c)
			cr.clients = append(cr.clients, p)
		}
		for _, p := range r.Principals {
			pp, _ := identity.ParsePattern(p)
			cr.principals = append(cr.principals, pp)
		}
		a.rules = append(a.rules, cr)
	}
	return a
}

// Allowed decides for a request (method and path "" for a TCP
// connection) from client, whose verified principal is principal ("" for
// plaintext).
func (a *Authz) Allowed(method, path string, client netip.Addr, principal string) bool {
	client = client.Unmap()
	for _, r := range a.rules {
		if r.matches(method, path, client, principal) {
			return r.allow
		}
	}
	return a.allowByDefault
}

func (r rule) matches(method, path string, client netip.Addr, principal string) bool {
	if len(r.methods) > 0 && !slices.Contains(r.methods, method) {
		return false
	}
	if len(r.paths) > 0 && !slices.ContainsFunc(r.paths, func(p string) bool { return strings.HasPrefix(path, p) }) {
		return false
	}
	if len(r.clients) > 0 && !slices.ContainsFunc(r.clients, func(p netip.Prefix) bool { return p.Contains(client) }) {
		return false
	}
	if len(r.principals) > 0 && !slices.ContainsFunc(r.principals, func(p identity.Pattern) bool { return p.MatchesString(principal) }) {
		return false
	}
	return true
}

// Name is the config key.
func (a *Authz) Name() string { return Key }

// Request denies an HTTP request before anything after it sees it.
func (a *Authz) Request(x *exchange.Exchange) exchange.Verdict {
	if !a.Allowed(x.Method, x.Path, x.Client.Addr(), x.Principal) {
		return exchange.Verdict{Status: http.StatusForbidden, Flag: exchange.Denied, Why: "denied by authorization policy"}
	}
	return exchange.Verdict{}
}
