package headers

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/veneermesh/veneer/pkg/config"
)

func TestHeaders(t *testing.T) {
	hd := New(config.Headers{
		Request:  config.HeaderOps{Set: map[string]string{"X-Env": "prod"}, Add: map[string]string{"Via": "veneer"}, Remove: []string{"X-Debug"}},
		Response: config.HeaderOps{Set: map[string]string{"Cache-Control": "no-store"}, Remove: []string{"Server"}},
	})
	var seen http.Header
	h := hd.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.Header().Set("Server", "SimpleHTTP/0.6")
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("body")) // an implicit 200
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Debug", "1")
	r.Header.Set("X-Env", "dev")
	r.Header.Add("Via", "1.1 lb")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if seen.Get("X-Debug") != "" || seen.Get("X-Env") != "prod" || len(seen.Values("Via")) != 2 {
		t.Errorf("request headers the app saw = %v; want X-Debug removed, X-Env replaced, Via added", seen)
	}
	if rec.Header().Get("Server") != "" || rec.Header().Get("Cache-Control") != "no-store" || rec.Body.String() != "body" {
		t.Errorf("response = %v %q; want Server removed and Cache-Control replaced", rec.Header(), rec.Body)
	}
}
