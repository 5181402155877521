package accesslog

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/exchange"
)

func TestLine(t *testing.T) {
	var out bytes.Buffer
	ex := &exchange.Exchange{Start: time.Now(), Port: 8080,
		Client: netip.MustParseAddrPort("10.0.0.1:5555"), Upstream: netip.MustParseAddrPort("10.0.0.2:8080"),
		Method: "POST", Path: "/upload", Target: "/upload?x=1", Host: "app", Proto: "HTTP/1.1",
		UserAgent: "curl/8", ForwardedFor: "203.0.113.9",
		Request: http.Header{"X-Request-Id": {"rid-1"}, "X-Forwarded-For": {"changed on the way"}},
		Status:  200, Sent: 5}
	ex.SetUpstreamTime(1500 * time.Microsecond)
	New(zerolog.New(&out)).Done(ex)
	// Nothing read the body: 0 bytes received.
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
