package httpproxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
	_ "github.com/veneermesh/veneer/pkg/decor/all" // every decoration's module
)

func TestRoutes(t *testing.T) {
	s, err := New(zerolog.Nop(), Options{Access: io.Discard}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
default:
  routes: [{prefix: /d}]
ports:
  "8080":
    routes: [{prefix: /api}, {prefix: /api/v2}, {prefix: /}]
`), decor.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	tb := s.table.Load()
	for _, tc := range []struct {
		port       uint16
		path, want string
	}{
		{8080, "/api/v2/x", "/api/v2"}, // the longest prefix wins
		{8080, "/api/v1", "/api"},
		{8080, "/other", "/"},
		{9090, "/d/x", "/d"}, // an unlisted port: the default section
		{9090, "/x", ""},     // the port's own chain
	} {
		if got := tb.route(tc.port, tc.path).prefix; got != tc.want {
			t.Errorf("route(%d, %s) = %q; want %q", tc.port, tc.path, got, tc.want)
		}
	}
	var _ http.Handler = s
}

// An error a module meets only when its chain is built (a page file that
// is not there) names the section it is in, as the config's own errors do.
func TestChainErrorNamesItsSection(t *testing.T) {
	s, err := New(zerolog.Nop(), Options{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{`ports: {"8080": {http: {errorPages: {pages: {"404": /nonexistent/404.html}}}}}`, "ports.8080.http: errorPages.pages.404: "},
		{`default: {routes: [{prefix: /a}, {prefix: /b, errorPages: {pages: {"5xx": /nonexistent/x.html}}}]}`, "default.routes[1]: errorPages.pages.5xx: "},
	} {
		cfg, err := config.Parse([]byte(tc.yaml), decor.Schema())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(cfg); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Apply(%s) = %v; want an error starting %q", tc.yaml, err, tc.want)
		}
	}
}
