package authz

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
)

func TestAllowed(t *testing.T) {
	a := New(config.Authz{Default: "allow", Rules: []config.Rule{
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
		if got := a.Allowed(tc.method, tc.path, netip.MustParseAddr(tc.client)); got != tc.want {
			t.Errorf("Allowed(%s %s from %s) = %v; want %v", tc.method, tc.path, tc.client, got, tc.want)
		}
	}
	deny := New(config.Authz{Default: "deny", Rules: []config.Rule{{Action: "allow", Paths: []string{"/public"}}}})
	if deny.Allowed("GET", "/private", netip.MustParseAddr("10.0.0.1")) || !deny.Allowed("GET", "/public/x", netip.MustParseAddr("10.0.0.1")) {
		t.Error("default deny with an allow rule: want only /public allowed")
	}
}

func TestWrapNeverReachesNext(t *testing.T) {
	a := New(config.Authz{Rules: []config.Rule{{Action: "deny", Paths: []string{"/secret"}}}})
	reached := 0
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	ex := &exchange.Exchange{Client: netip.MustParseAddrPort("10.0.0.1:1234")}
	r := httptest.NewRequest("GET", "/secret/x", nil)
	r = r.WithContext(exchange.With(r.Context(), ex))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusForbidden || reached != 0 || ex.Flags() != exchange.Denied {
		t.Errorf("denied request: status %d, reached app %d times, flags %v; want 403, 0, DENY", rec.Code, reached, ex.Flags())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/open", nil).WithContext(exchange.With(r.Context(), ex)))
	if reached != 1 {
		t.Errorf("allowed request reached the app %d times; want 1", reached)
	}
}
