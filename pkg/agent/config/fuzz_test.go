package config_test

import (
	"strings"
	"testing"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
	"github.com/veneermesh/veneer/pkg/decor/accesslog"
	_ "github.com/veneermesh/veneer/pkg/decor/all" // every decoration's module
)

// FuzzParse: any document parses, with the decorations' real blocks, or
// fails with a one-line error, never a panic; a config that parses has its
// defaults filled.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"default: {protocol: http}",
		"ports: {\"8080\": {http: {fault: {abort: {status: 503, percent: 10}}}}}",
		"default: {http: {retries: {attempts: 2}, rateLimit: {requestsPerSecond: 1}}}",
		"default: {routes: [{prefix: /a, authz: {rules: [{action: deny, clients: [10.0.0.0/8]}]}}]}",
		"outbound: {protocol: tcp}\nstats: {maxPaths: 5}",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse(b, decor.Schema())
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Parse(%q): the error spans lines: %q", b, err)
			}
			return
		}
		if _, ok := c.Default.HTTP[accesslog.Key]; c.Default.Protocol == "" || c.Stats.MaxPaths <= 0 || !ok {
			t.Errorf("Parse(%q) left defaults unset: %+v", b, c)
		}
	})
}
