package headers

import (
	"net/http"
	"testing"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func TestHeaders(t *testing.T) {
	hd := New(Config{
		Request:  Ops{Set: map[string]string{"X-Env": "prod"}, Add: map[string]string{"Via": "veneer"}, Remove: []string{"X-Debug"}},
		Response: Ops{Set: map[string]string{"Cache-Control": "no-store"}, Remove: []string{"Server"}},
	})
	seen := http.Header{"X-Debug": {"1"}, "X-Env": {"dev"}, "Via": {"1.1 lb"}}
	resp := http.Header{"Server": {"SimpleHTTP/0.6"}, "Cache-Control": {"max-age=60"}}
	x := &exchange.Exchange{Request: seen, Response: resp, Status: 200}
	hd.Request(x)
	hd.Response(x)
	if seen.Get("X-Debug") != "" || seen.Get("X-Env") != "prod" || len(seen.Values("Via")) != 2 {
		t.Errorf("request headers the app saw = %v; want X-Debug removed, X-Env replaced, Via added", seen)
	}
	if resp.Get("Server") != "" || resp.Get("Cache-Control") != "no-store" {
		t.Errorf("response = %v; want Server removed and Cache-Control replaced", resp)
	}
}
