package accesslog

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/exchange"
)

func TestLine(t *testing.T) {
	var out bytes.Buffer
	h := New(zerolog.New(&out)).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exchange.From(r.Context()).SetUpstreamTime(1500 * time.Microsecond)
		w.Write([]byte("hello"))
	}))
	ex := &exchange.Exchange{Start: time.Now(), Port: 8080,
		Client: netip.MustParseAddrPort("10.0.0.1:5555"), Upstream: netip.MustParseAddrPort("10.0.0.2:8080")}
	r := httptest.NewRequest("POST", "http://app/upload?x=1", strings.NewReader("body!"))
	r.Header.Set("User-Agent", "curl/8")
	r.Header.Set("X-Request-Id", "rid-1")
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	w, r := exchange.Begin(httptest.NewRecorder(), r, ex, 0)
	h.ServeHTTP(w, r)
	// The handler did not read the body: 0 bytes received.
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("access log %q: %v", out.String(), err)
	}
	want := map[string]any{
		"method": "POST", "path": "/upload?x=1", "protocol": "HTTP/1.1", "status": float64(200), "response_flags": "-",
		"bytes_received": float64(0), "bytes_sent": float64(5), "upstream_service_time_ms": 1.5,
		"x_forwarded_for": "203.0.113.9", "user_agent": "curl/8", "request_id": "rid-1", "authority": "app",
		"upstream_host": "10.0.0.2:8080", "client_address": "10.0.0.1:5555",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v; want %v", k, line[k], v)
		}
	}
	for _, k := range []string{"start_time", "duration_ms"} {
		if _, ok := line[k]; !ok {
			t.Errorf("line lacks %s", k)
		}
	}
}
