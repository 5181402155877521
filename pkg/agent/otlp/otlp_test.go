package otlp

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// collector is the smallest OTLP/HTTP receiver: it keeps the spans posted
// to /v1/traces, or answers status when it is not 200.
type collector struct {
	mu     sync.Mutex
	spans  []*tracepb.Span
	status int
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.URL.Path != "/v1/traces" || c.status != 0 {
		w.WriteHeader(max(c.status, 404))
		return
	}
	b, _ := io.ReadAll(r.Body)
	var req tracepb.TracesData // ExportTraceServiceRequest's one field: the same bytes
	if err := proto.Unmarshal(b, &req); err != nil {
		w.WriteHeader(400)
		return
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(nil)
}

func (c *collector) got() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...)
}

func sampled(direction string, status int, parent bool) *exchange.Exchange {
	x := &exchange.Exchange{Start: time.Now().Add(-3 * time.Millisecond), Direction: direction, Port: 8080, Method: "GET",
		Path: "/api/items", Host: "shop:8080", Proto: "HTTP/1.1", Route: "/api", UserAgent: "curl/8", RequestID: "rid-1", Status: status,
		Client: netip.MustParseAddrPort("10.0.0.9:4242"), Upstream: netip.MustParseAddrPort("10.0.0.2:8080"), Sent: 42}
	rand.Read(x.Trace.ID[:])
	rand.Read(x.Trace.Span[:])
	if parent {
		rand.Read(x.Trace.Parent[:])
	}
	x.Trace.Flags = 1
	return x
}

func attrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		if _, ok := kv.Value.Value.(*commonpb.AnyValue_IntValue); ok {
			m[kv.Key] = strconv.FormatInt(kv.Value.GetIntValue(), 10)
		} else {
			m[kv.Key] = kv.Value.GetStringValue()
		}
	}
	return m
}

func TestSpans(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	e, err := New(Options{Endpoint: srv.URL, Sampling: 1, Service: "shop", Interval: 50 * time.Millisecond}, reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	in := sampled("inbound", 503, true)
	in.AddFlag(exchange.FaultAbort)
	e.Export(in)
	out := sampled("outbound", 200, false)
	e.Export(out)
	e.Close()
	spans := c.got()
	if len(spans) != 2 {
		t.Fatalf("%d spans at the collector; want 2", len(spans))
	}
	s := spans[0]
	if hex.EncodeToString(s.TraceId) != hex.EncodeToString(in.Trace.ID[:]) || hex.EncodeToString(s.SpanId) != hex.EncodeToString(in.Trace.Span[:]) ||
		hex.EncodeToString(s.ParentSpanId) != hex.EncodeToString(in.Trace.Parent[:]) {
		t.Errorf("ids %x/%x parent %x; want the request's %x/%x parent %x", s.TraceId, s.SpanId, s.ParentSpanId, in.Trace.ID, in.Trace.Span, in.Trace.Parent)
	}
	if s.Name != "GET /api" || s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("span %q kind %v status %v; want GET /api, server, error", s.Name, s.Kind, s.Status)
	}
	if d := time.Duration(s.EndTimeUnixNano - s.StartTimeUnixNano); d < 3*time.Millisecond || d > time.Second {
		t.Errorf("span lasted %v; want the exchange's 3ms and more", d)
	}
	a := attrs(s)
	for k, want := range map[string]string{"http.request.method": "GET", "url.path": "/api/items", "http.route": "/api",
		"http.response.status_code": "503", "server.address": "shop", "server.port": "8080", "client.address": "10.0.0.9",
		"network.protocol.version": "1.1", "user_agent.original": "curl/8", "veneer.response_flags": "FI",
		"veneer.request_id": "rid-1", "error.type": "503", "http.response.body.size": "42"} {
		if a[k] != want {
			t.Errorf("attribute %s = %q; want %q", k, a[k], want)
		}
	}
	if o := spans[1]; o.Kind != tracepb.Span_SPAN_KIND_CLIENT || len(o.ParentSpanId) != 0 || attrs(o)["network.peer.address"] != "10.0.0.2" {
		t.Errorf("outbound span: kind %v, parent %x, peer %q; want a client span without parent, peer the destination", o.Kind, o.ParentSpanId, attrs(o)["network.peer.address"])
	}
	if n := testutil.ToFloat64(e.exported); n != 2 {
		t.Errorf("exported %v; want 2", n)
	}
}

// A collector that fails, or none at all: spans are dropped and counted,
// and Export never waits.
func TestDrops(t *testing.T) {
	c := &collector{status: 503}
	srv := httptest.NewServer(c)
	defer srv.Close()
	e, err := New(Options{Endpoint: srv.URL, Sampling: 1, Queue: 4, Interval: time.Hour, Batch: 2}, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 100 {
		e.Export(sampled("inbound", 200, false))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("100 exports took %v", d)
	}
	e.Close()
	full, failed := testutil.ToFloat64(e.queueFull), testutil.ToFloat64(e.failed)
	if full+failed != 100 || failed == 0 || full == 0 {
		t.Errorf("dropped %v for a full queue and %v failed; want 100 in all, some of each", full, failed)
	}
}

func TestSample(t *testing.T) {
	for _, ratio := range []float64{0, 0.25, 1} {
		e := &Exporter{threshold: threshold(ratio)}
		n := 0
		for range 4000 {
			var id [16]byte
			rand.Read(id[:])
			if e.Sample(id) {
				n++
			}
		}
		if got := float64(n) / 4000; got < ratio-0.05 || got > ratio+0.05 {
			t.Errorf("sampling %v: %v sampled", ratio, got)
		}
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Endpoint: "collector:4318"}, `--otlp-endpoint: "collector:4318" is not an http:// or https:// URL`},
		{Options{Endpoint: "ftp://c"}, `--otlp-endpoint: "ftp://c" is not`},
		{Options{Endpoint: "http://c:4318", Sampling: 2}, "--trace-sampling: 2 is not a share between 0 and 1"},
		{Options{Endpoint: "http://c:4318", Sampling: -0.1}, "--trace-sampling: -0.1 is not"},
	} {
		_, err := New(tc.o, prometheus.NewRegistry(), zerolog.Nop())
		if err == nil || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
			t.Errorf("New(%+v) = %v; want %q", tc.o, err, tc.want)
		}
	}
}
