package authz

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func TestAllowed(t *testing.T) {
	a := New(Config{Default: "allow", Rules: []Rule{
		{Action: "allow", Clients: []string{"10.0.0.5"}},
		{Action: "deny", Methods: []string{"DELETE"}, Paths: []string{"/admin"}},
		{Action: "deny", Clients: []string{"192.0.2.0/24", "fd00::/8"}},
	}})
	for _, tc := range []struct {
		method, path, client string
		want                 bool
	}{
		{"GET", "/", "10.0.0.1", true},
		{"DELETE", "/admin/users", "10.0.0.1", false},
		{"DELETE", "/other", "10.0.0.1", true},
		{"GET", "/admin", "10.0.0.1", true},
		{"DELETE", "/admin", "10.0.0.5", true}, // the first matching rule decides
		{"GET", "/", "192.0.2.77", false},
		{"GET", "/", "::ffff:192.0.2.77", false}, // a v4 client on the dual-stack listener
		{"GET", "/", "fd00::7", false},
		{"", "", "192.0.2.1", false}, // a TCP connection
	} {
		if got := a.Allowed(tc.method, tc.path, netip.MustParseAddr(tc.client), ""); got != tc.want {
			t.Errorf("Allowed(%s %s from %s) = %v; want %v", tc.method, tc.path, tc.client, got, tc.want)
		}
	}
	deny := New(Config{Default: "deny", Rules: []Rule{{Action: "allow", Paths: []string{"/public"}}}})
	if deny.Allowed("GET", "/private", netip.MustParseAddr("10.0.0.1"), "") || !deny.Allowed("GET", "/public/x", netip.MustParseAddr("10.0.0.1"), "") {
		t.Error("default deny with an allow rule: want only /public allowed")
	}
}

func TestPrincipals(t *testing.T) {
	cfg := Config{Default: "deny", Rules: []Rule{
		{Action: "deny", Principals: []string{"spiffe://td/ns/shop/sa/intruder"}},
		{Action: "allow", Principals: []string{"spiffe://td/ns/shop/*", "spiffe://td/ns/ops/sa/admin"}, Methods: []string{"GET"}},
		{Action: "allow", Clients: []string{"10.1.0.0/16"}},
	}}
	if err := cfg.Provision(); err != nil {
		t.Fatal(err)
	}
	a := New(cfg)
	ip := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		method, principal string
		client            netip.Addr
		want              bool
	}{
		{"GET", "spiffe://td/ns/shop/sa/web", ip, true},
		{"POST", "spiffe://td/ns/shop/sa/web", ip, false},
		{"GET", "spiffe://td/ns/ops/sa/admin", ip, true},
		{"GET", "spiffe://td/ns/ops/sa/other", ip, false},
		{"GET", "spiffe://td/ns/shop/sa/intruder", ip, false},
		{"GET", "spiffe://td/ns/shopping/sa/web", ip, false}, // a prefix of the path, not of its segments
		{"GET", "", ip, false},                               // plaintext: no principal
		{"GET", "", netip.MustParseAddr("10.1.2.3"), true},
	} {
		if got := a.Allowed(tc.method, "/", tc.client, tc.principal); got != tc.want {
			t.Errorf("%s from %q at %s: %v, want %v", tc.method, tc.principal, tc.client, got, tc.want)
		}
	}
	for _, bad := range []string{"web", "spiffe://td/ns/*/sa/web"} {
		c := Config{Rules: []Rule{{Action: "allow", Principals: []string{bad}}}}
		if err := c.Provision(); err == nil || !strings.Contains(err.Error(), "rules[0].principals[0]") {
			t.Errorf("principal %q: %v, want an error naming rules[0].principals[0]", bad, err)
		}
	}
	tcp := TCPConfig{Rules: []Rule{{Action: "allow", Principals: []string{"spiffe://td/*"}}}}
	if err := tcp.Provision(); err != nil {
		t.Errorf("a TCP rule with principals: %v", err)
	}
}

func TestRequest(t *testing.T) {
	a := New(Config{Rules: []Rule{{Action: "deny", Paths: []string{"/secret"}}}})
	client := netip.MustParseAddrPort("10.0.0.1:1234")
	for _, tc := range []struct {
		path   string
		status int
	}{{"/secret/x", http.StatusForbidden}, {"/open", 0}} {
		v := a.Request(&exchange.Exchange{Method: "GET", Path: tc.path, Client: client})
		if v.Status != tc.status || tc.status != 0 && v.Flag != exchange.Denied {
			t.Errorf("%s: status %d, flag %v; want %d (DENY when denied)", tc.path, v.Status, v.Flag, tc.status)
		}
	}
}
