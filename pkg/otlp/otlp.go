// Package otlp exports a span per sampled request to an OpenTelemetry
// collector over OTLP/HTTP (protobuf), with OpenTelemetry's Go SDK: the
// spans Envoy's sidecar sends for Istio, with the attributes of
// OpenTelemetry's HTTP semantic conventions and veneer's response flags.
//
//	e, err := otlp.New(otlp.Options{Endpoint: "http://collector:4318", Sampling: 0.01, Service: "shop"}, reg, log)
//	defer e.Close()         // sends what is queued, for at most a few seconds
//	ids := requestid.NewTraced(true, e)
//
// Exporting never holds a request: the request's side copies what the span
// needs into a bounded queue and goes on; one goroutine makes the spans and
// sends them in batches. A full queue (a collector down or slow) drops
// spans, and a failed export drops its batch: both are counted in
// veneer_trace_spans_dropped_total{reason}.
package otlp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/veneermesh/veneer/pkg/exchange"
)

// Options say where spans go and how many.
type Options struct {
	// Endpoint is the collector's OTLP/HTTP base URL (http://host:4318);
	// spans are posted to its /v1/traces. Required.
	Endpoint string
	// Sampling is the share of the traces the agent starts that are
	// recorded, 0 to 1; a request that comes with a traceparent is
	// recorded as its sampled flag says.
	Sampling float64
	// Service is the spans' service.name; Attributes are added to their
	// resource (k8s.namespace.name, k8s.pod.name).
	Service    string
	Attributes map[string]string
	// Queue bounds the spans waiting to be sent; 0 means 2048.
	Queue int
	// Batch is how many spans one export sends at most, and Interval how
	// long a span may wait for its batch; 0 means 512 and 1s.
	Batch    int
	Interval time.Duration
	// Timeout bounds one export; 0 means 5s.
	Timeout time.Duration
}

// Exporter queues and sends the spans.
type Exporter struct {
	o         Options
	threshold uint64 // a new trace is sampled when its id's low 8 bytes are below it
	queue     chan span
	exporter  sdktrace.SpanExporter
	provider  *sdktrace.TracerProvider
	tracer    trace.Tracer
	batch     []sdktrace.ReadOnlySpan
	done      chan struct{}
	log       zerolog.Logger

	exported  prometheus.Counter
	queueFull prometheus.Counter
	failed    prometheus.Counter
}

// New checks o and starts the exporter's goroutine; nothing is sent until
// spans come.
func New(o Options, reg prometheus.Registerer, log zerolog.Logger) (*Exporter, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--otlp-endpoint: %q is not an http:// or https:// URL of a collector (e.g. http://otel-collector:4318)", o.Endpoint)
	}
	if !(o.Sampling >= 0 && o.Sampling <= 1) {
		return nil, fmt.Errorf("--trace-sampling: %v is not a share between 0 and 1 (0.01 is 1%%)", o.Sampling)
	}
	if o.Service == "" {
		o.Service = "veneer-agent"
	}
	if o.Queue <= 0 {
		o.Queue = 2048
	}
	if o.Batch <= 0 {
		o.Batch = 512
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	path := strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(path),
		otlptracehttp.WithTimeout(o.Timeout),
		// A batch that failed is counted as dropped: the queue behind it
		// is what waits, not a retry loop.
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	e := &Exporter{o: o, queue: make(chan span, o.Queue), exporter: exp, done: make(chan struct{}),
		log: log.With().Str("component", "otlp").Logger()}
	// Sampling as OpenTelemetry's TraceIDRatioBased: by the trace id's low
	// 8 bytes, so every agent a trace crosses decides alike.
	e.threshold = uint64(o.Sampling * (1 << 63))
	if o.Sampling >= 1 {
		e.threshold = 1 << 63
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(o.Service)}
	for k, v := range o.Attributes {
		attrs = append(attrs, attribute.String(k, v))
	}
	e.provider = sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, attrs...)),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), // sampled already: only sampled requests come here
		sdktrace.WithIDGenerator(ids{}),
		sdktrace.WithSpanProcessor(collect{e}),
	)
	e.tracer = e.provider.Tracer("github.com/veneermesh/veneer")
	e.exported = prometheus.NewCounter(prometheus.CounterOpts{Name: "veneer_trace_spans_exported_total",
		Help: "Spans of sampled requests accepted by the OTLP collector."})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "veneer_trace_spans_dropped_total",
		Help: "Spans of sampled requests not sent: queue_full (the collector was too slow or down), export_failed (it refused or could not be reached)."},
		[]string{"reason"})
	e.queueFull, e.failed = dropped.WithLabelValues("queue_full"), dropped.WithLabelValues("export_failed")
	for _, c := range []prometheus.Collector{e.exported, dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	go e.run()
	return e, nil
}

// Sample says whether a trace the agent starts is recorded.
func (e *Exporter) Sample(id [16]byte) bool {
	return binary.BigEndian.Uint64(id[8:])>>1 < e.threshold
}

// span is what a request's span is made of, copied out of the exchange.
type span struct {
	trace                     exchange.Trace
	start, end                time.Time
	direction, method, path   string
	host, route, proto, agent string
	requestID, flags          string
	status                    int
	port                      uint16
	client, upstream          netip.AddrPort
	received, sent            int64
	failure                   string
	flagged                   bool
}

// Export queues x's span; when the queue is full the span is dropped and
// counted.
func (e *Exporter) Export(x *exchange.Exchange) {
	s := span{trace: x.Trace, start: x.Start, end: time.Now(), direction: x.Direction,
		method: strings.Clone(x.Method), path: strings.Clone(x.Path), host: strings.Clone(x.Host),
		route: x.Route, proto: strings.Clone(x.Proto), agent: strings.Clone(x.UserAgent), requestID: strings.Clone(x.RequestID),
		status: x.Status, port: x.Port, client: x.Client, upstream: x.Upstream, received: x.Received(), sent: x.Sent,
		failure: x.Failure()}
	if f := x.Flags(); f != 0 {
		s.flags, s.flagged = f.String(), true
	}
	select {
	case e.queue <- s:
	default:
		e.queueFull.Inc()
	}
}

// Close sends what is queued, within the export timeout, and stops.
func (e *Exporter) Close() error {
	close(e.queue)
	<-e.done
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
	defer cancel()
	return errors.Join(e.provider.Shutdown(ctx), e.exporter.Shutdown(ctx))
}

// run makes spans of what is queued and sends them, a batch when it is
// full or has waited Interval.
func (e *Exporter) run() {
	defer close(e.done)
	tick := time.NewTicker(e.o.Interval)
	defer tick.Stop()
	for {
		select {
		case s, ok := <-e.queue:
			if !ok {
				e.flush()
				return
			}
			e.record(s)
			if len(e.batch) >= e.o.Batch {
				e.flush()
			}
		case <-tick.C:
			e.flush()
		}
	}
}

func (e *Exporter) flush() {
	if len(e.batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
	err := e.exporter.ExportSpans(ctx, e.batch)
	cancel()
	if err != nil {
		e.failed.Add(float64(len(e.batch)))
		e.log.Debug().Err(err).Int("spans", len(e.batch)).Msg("export failed; spans dropped")
	} else {
		e.exported.Add(float64(len(e.batch)))
	}
	clear(e.batch)
	e.batch = e.batch[:0]
}

// record makes s's span through the SDK, which hands it, ended, to collect.
func (e *Exporter) record(s span) {
	ctx := context.WithValue(context.Background(), idsKey{}, &s.trace)
	if s.trace.Parent != [8]byte{} {
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: s.trace.ID, SpanID: s.trace.Parent, TraceFlags: trace.TraceFlags(s.trace.Flags), Remote: true}))
	}
	kind := trace.SpanKindServer
	if s.direction == "outbound" {
		kind = trace.SpanKindClient
	}
	name := s.method
	if s.route != "" {
		name += " " + s.route
	}
	_, sp := e.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithTimestamp(s.start), trace.WithAttributes(attributes(&s)...))
	// Server spans are errors for 5xx only (the client's 4xx is not the
	// server's failure); client spans for 4xx too, as the conventions say.
	if s.status >= 500 || kind == trace.SpanKindClient && s.status >= 400 || s.status == 0 {
		sp.SetStatus(codes.Error, s.failure)
	}
	sp.End(trace.WithTimestamp(s.end))
}

// attributes are OpenTelemetry's HTTP semantic conventions for s, and
// veneer's own.
func attributes(s *span) []attribute.KeyValue {
	host, port := s.host, int(s.port)
	if h, p, err := net.SplitHostPort(s.host); err == nil {
		host = h
		if n, err := strconv.Atoi(p); err == nil {
			port = n
		}
	}
	a := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(s.method),
		semconv.URLPath(s.path),
		semconv.URLScheme("http"),
		semconv.ServerAddress(host),
		semconv.ServerPort(port),
		semconv.ClientAddress(s.client.Addr().String()),
		semconv.ClientPort(int(s.client.Port())),
		semconv.NetworkPeerAddress(s.client.Addr().String()),
		semconv.NetworkPeerPort(int(s.client.Port())),
		semconv.NetworkProtocolVersion(strings.TrimPrefix(s.proto, "HTTP/")),
		semconv.HTTPRequestBodySize(int(s.received)),
		semconv.HTTPResponseBodySize(int(s.sent)),
		attribute.String("veneer.direction", s.direction),
	}
	if s.direction == "outbound" {
		// The peer of a client span is the destination.
		a[7], a[8] = semconv.NetworkPeerAddress(s.upstream.Addr().String()), semconv.NetworkPeerPort(int(s.upstream.Port()))
	} else if s.upstream.IsValid() {
		a = append(a, attribute.String("veneer.upstream.address", s.upstream.String()))
	}
	if s.status != 0 {
		a = append(a, semconv.HTTPResponseStatusCode(s.status))
	}
	if s.status >= 500 || s.status == 0 {
		a = append(a, semconv.ErrorTypeKey.String(errorType(s)))
	}
	if s.route != "" {
		a = append(a, semconv.HTTPRoute(s.route))
	}
	if s.agent != "" {
		a = append(a, semconv.UserAgentOriginal(s.agent))
	}
	if s.flagged {
		a = append(a, attribute.String("veneer.response_flags", s.flags))
	}
	if s.requestID != "" {
		a = append(a, attribute.String("veneer.request_id", s.requestID))
	}
	return a
}

// errorType is error.type: the status code, or what failed when there was
// no response.
func errorType(s *span) string {
	if s.status != 0 {
		return strconv.Itoa(s.status)
	}
	if s.flagged {
		return s.flags
	}
	return "_OTHER"
}

// ids gives the SDK the ids the request already carries: the agent's span
// id went to the app as its parent before the span was made.
type ids struct{}

type idsKey struct{}

func (ids) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	t := ctx.Value(idsKey{}).(*exchange.Trace)
	return t.ID, t.Span
}

func (ids) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	return ctx.Value(idsKey{}).(*exchange.Trace).Span
}

// collect takes the ended spans into the batch; the SDK calls it on run's
// goroutine, from End.
type collect struct{ e *Exporter }

func (c collect) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c collect) OnEnd(s sdktrace.ReadOnlySpan)                   { c.e.batch = append(c.e.batch, s) }
func (c collect) Shutdown(context.Context) error                  { return nil }
func (c collect) ForceFlush(context.Context) error                { return nil }
