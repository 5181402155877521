package accesslog

import (
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// BenchmarkDone formats one access log line, as the loop does at the end
// of each exchange (the output discards it: pkg/agent/logsink's write is
// measured there).
func BenchmarkDone(b *testing.B) {
	ex := &exchange.Exchange{Start: time.Now(), Port: 8080,
		Client: netip.MustParseAddrPort("10.0.0.1:5555"), Upstream: netip.MustParseAddrPort("10.0.0.2:8080"),
		Method: "GET", Path: "/", Target: "/", Host: "10.213.0.2:8080", Proto: "HTTP/1.1", UserAgent: "wrk",
		Request: http.Header{"X-Request-Id": {"8c1f7a3e-5b2d-4c9a-9f0e-2d6b1a4c7e55"}},
		Status:  200, Sent: 1024, Direction: "inbound"}
	ex.SetUpstreamTime(300 * time.Microsecond)
	l := New(Config{}, io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		l.Done(ex)
	}
}
