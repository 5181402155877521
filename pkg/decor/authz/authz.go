// Package authz allows and denies traffic by method, path prefix and client
// CIDR. Denied HTTP gets 403 (flag DENY); denied TCP is reset before the app
// is contacted. Either way, denied traffic never reaches the app.
//
//	# config
//	authz:
//	  default: allow
//	  rules:
//	  - {action: deny, methods: [DELETE], paths: [/admin]}
//	  - {action: deny, clients: [192.0.2.0/24]}
//
// Metrics: denied requests count in veneer_requests_total with flags="DENY".
package authz

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
)

// Authz is a compiled rule list.
type Authz struct {
	allowByDefault bool
	rules          []rule
}

type rule struct {
	allow   bool
	methods []string
	paths   []string
	clients []netip.Prefix
}

// New compiles cfg, which config.Parse has validated.
func New(cfg config.Authz) *Authz {
	a := &Authz{allowByDefault: cfg.Default != "deny"}
	for _, r := range cfg.Rules {
		cr := rule{allow: r.Action == "allow", methods: r.Methods, paths: r.Paths}
		for _, c := range r.Clients {
			p, _ := config.ParseCIDR(c)
			cr.clients = append(cr.clients, p)
		}
		a.rules = append(a.rules, cr)
	}
	return a
}

// Allowed decides for a request (method and path "" for a TCP connection).
func (a *Authz) Allowed(method, path string, client netip.Addr) bool {
	client = client.Unmap()
	for _, r := range a.rules {
		if r.matches(method, path, client) {
			return r.allow
		}
	}
	return a.allowByDefault
}

func (r rule) matches(method, path string, client netip.Addr) bool {
	if len(r.methods) > 0 && !slices.Contains(r.methods, method) {
		return false
	}
	if len(r.paths) > 0 && !slices.ContainsFunc(r.paths, func(p string) bool { return strings.HasPrefix(path, p) }) {
		return false
	}
	if len(r.clients) > 0 && !slices.ContainsFunc(r.clients, func(p netip.Prefix) bool { return p.Contains(client) }) {
		return false
	}
	return true
}

// Name is the config key.
func (a *Authz) Name() string { return "authz" }

// Request denies an HTTP request before anything after it sees it.
func (a *Authz) Request(x *exchange.Exchange) exchange.Verdict {
	if !a.Allowed(x.Method, x.Path, x.Client.Addr()) {
		return exchange.Verdict{Status: http.StatusForbidden, Flag: exchange.Denied, Why: "denied by authorization policy"}
	}
	return exchange.Verdict{}
}
