// Package otlp exports a span per sampled request to an OpenTelemetry
// collector over OTLP/HTTP (protobuf, POST /v1/traces): the spans Envoy's
// sidecar sends for Istio, with the attributes of OpenTelemetry's HTTP
// semantic conventions and veneer's response flags.
//
//	e, err := otlp.New(otlp.Options{Endpoint: "http://collector:4318", Sampling: 0.01, Service: "shop"}, reg, log)
//	defer e.Close()         // sends what is queued, for at most the export timeout
//	ids := requestid.NewTraced(true, e)
//
// Exporting never holds a request: the request's side copies what the span
// needs into a bounded queue and goes on; one goroutine makes the spans and
// sends them in batches. A full queue (a collector down or slow) drops
// spans, and a failed export drops its batch: both are counted in
// veneer_trace_spans_dropped_total{reason}.
//
// The spans are OpenTelemetry's own protobuf types (go.opentelemetry.io/
// proto/otlp), made here from the exchange's record rather than through the
// OpenTelemetry SDK: the SDK's OTLP/HTTP exporter links gRPC and its
// gateway into every agent (9 MB of binary, 5 MiB of resident memory with
// tracing off), and its span life cycle is for code that instruments
// itself, not for a proxy that knows each span whole when it ends.
package otlp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
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
	// Service is the spans' service.name ("" means veneer-agent);
	// Attributes are added to their resource (k8s.namespace.name,
	// k8s.pod.name).
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
	url       string
	client    *http.Client
	threshold uint64 // a new trace is sampled when its id's low 8 bytes are below it
	queue     chan span
	batch     []span
	resource  *resourcepb.Resource
	done      chan struct{}
	log       zerolog.Logger
	failing   bool // the last export failed: logged once, until one succeeds

	exported  prometheus.Counter
	queueFull prometheus.Counter
	failed    prometheus.Counter
}

// New checks o and starts the exporter's goroutine; nothing is sent until
// spans come.
func New(o Options, reg prometheus.Registerer, log zerolog.Logger) (*Exporter, error) {
	u, err := ParseEndpoint(o.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	if err := CheckSampling(o.Sampling); err != nil {
		return nil, fmt.Errorf("--trace-sampling: %w", err)
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
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	e := &Exporter{o: o, url: u.String(), queue: make(chan span, o.Queue), done: make(chan struct{}),
		// One connection, kept: one goroutine sends, a batch at a time.
		client: &http.Client{Timeout: o.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute,
			Proxy: http.ProxyFromEnvironment}},
		log: log.With().Str("component", "otlp").Logger()}
	e.threshold = threshold(o.Sampling)
	e.resource = &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str(string(semconv.ServiceNameKey), o.Service)}}
	keys := make([]string, 0, len(o.Attributes))
	for k := range o.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.resource.Attributes = append(e.resource.Attributes, str(k, o.Attributes[k]))
	}
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

// ParseEndpoint is a collector's OTLP/HTTP base URL, or why s is not one.
func ParseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http:// or https:// URL of a collector (e.g. http://otel-collector:4318)", s)
	}
	return u, nil
}

// CheckSampling says why f is not a sampling share, if it is not.
func CheckSampling(f float64) error {
	if !(f >= 0 && f <= 1) {
		return fmt.Errorf("%v is not a share between 0 and 1 (0.01 is 1%%)", f)
	}
	return nil
}

// threshold is Sample's bound for a share f of traces, as OpenTelemetry's
// TraceIDRatioBased: by the trace id's low 8 bytes, so that every agent a
// trace crosses decides alike.
func threshold(f float64) uint64 {
	if f >= 1 {
		return 1 << 63
	}
	return uint64(f * (1 << 63))
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
		s.flags = f.String()
	}
	select {
	case e.queue <- s:
	default:
		e.queueFull.Inc()
	}
}

// Close sends what is queued, within the export timeout, and stops.
func (e *Exporter) Close() {
	close(e.queue)
	<-e.done
}

// run sends what is queued, a batch when it is full or has waited
// Interval.
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
			e.batch = append(e.batch, s)
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
	n := len(e.batch)
	err := e.send()
	clear(e.batch)
	e.batch = e.batch[:0]
	if err != nil {
		e.failed.Add(float64(n))
		if !e.failing {
			e.log.Warn().Err(err).Str("endpoint", e.url).Msg("exporting spans failed; they are dropped and counted in veneer_trace_spans_dropped_total until the collector answers")
		}
		e.failing = true
		return
	}
	if e.failing {
		e.log.Info().Str("endpoint", e.url).Msg("exporting spans again")
	}
	e.failing = false
	e.exported.Add(float64(n))
}

// send posts the batch as an ExportTraceServiceRequest (whose one field is
// TracesData's: the same bytes).
func (e *Exporter) send() error {
	spans := make([]*tracepb.Span, len(e.batch))
	for i := range e.batch {
		spans[i] = e.batch[i].otlp()
	}
	body, err := proto.Marshal(&tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   e.resource,
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "github.com/veneermesh/veneer"}, Spans: spans}},
		SchemaUrl:  semconv.SchemaURL,
	}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", e.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so that the connection is kept
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("collector answered %s", resp.Status)
	}
	return nil
}

// otlp is s as an OTLP span.
func (s *span) otlp() *tracepb.Span {
	kind := tracepb.Span_SPAN_KIND_SERVER
	if s.direction == "outbound" {
		kind = tracepb.Span_SPAN_KIND_CLIENT
	}
	name := s.method
	if s.route != "" {
		name += " " + s.route
	}
	p := &tracepb.Span{
		TraceId:           s.trace.ID[:],
		SpanId:            s.trace.Span[:],
		Flags:             uint32(s.trace.Flags),
		Name:              name,
		Kind:              kind,
		StartTimeUnixNano: uint64(s.start.UnixNano()),
		EndTimeUnixNano:   uint64(s.end.UnixNano()),
		Attributes:        attributes(s),
	}
	if s.trace.Parent != [8]byte{} {
		p.ParentSpanId = s.trace.Parent[:]
		p.Flags |= 0x300 // the parent is remote (OTLP's SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE and IS_REMOTE)
	} else {
		p.Flags |= 0x100 // known to be local: there is no parent
	}
	// Server spans are errors for 5xx only (the client's 4xx is not the
	// server's failure); client spans for 4xx too, as the conventions say.
	if s.status >= 500 || kind == tracepb.Span_SPAN_KIND_CLIENT && s.status >= 400 || s.status == 0 {
		p.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: s.failure}
	}
	return p
}

// attributes are OpenTelemetry's HTTP semantic conventions for s, and
// veneer's own.
func attributes(s *span) []*commonpb.KeyValue {
	host, port := s.host, int64(s.port)
	if h, p, err := net.SplitHostPort(s.host); err == nil {
		host = h
		if n, err := strconv.Atoi(p); err == nil {
			port = int64(n)
		}
	}
	peer := s.client
	if s.direction == "outbound" {
		peer = s.upstream // the peer of a client span is the destination
	}
	a := []*commonpb.KeyValue{
		str(string(semconv.HTTPRequestMethodKey), s.method),
		str(string(semconv.URLPathKey), s.path),
		str(string(semconv.URLSchemeKey), "http"),
		str(string(semconv.ServerAddressKey), host),
		num(string(semconv.ServerPortKey), port),
		str(string(semconv.ClientAddressKey), s.client.Addr().String()),
		num(string(semconv.ClientPortKey), int64(s.client.Port())),
		str(string(semconv.NetworkPeerAddressKey), peer.Addr().String()),
		num(string(semconv.NetworkPeerPortKey), int64(peer.Port())),
		str(string(semconv.NetworkProtocolVersionKey), strings.TrimPrefix(s.proto, "HTTP/")),
		num(string(semconv.HTTPRequestBodySizeKey), s.received),
		num(string(semconv.HTTPResponseBodySizeKey), s.sent),
		str("veneer.direction", s.direction),
	}
	if s.direction != "outbound" && s.upstream.IsValid() {
		a = append(a, str("veneer.upstream.address", s.upstream.String()))
	}
	if s.status != 0 {
		a = append(a, num(string(semconv.HTTPResponseStatusCodeKey), int64(s.status)))
	}
	if s.status >= 500 || s.status == 0 {
		a = append(a, str(string(semconv.ErrorTypeKey), errorType(s)))
	}
	if s.route != "" {
		a = append(a, str(string(semconv.HTTPRouteKey), s.route))
	}
	if s.agent != "" {
		a = append(a, str(string(semconv.UserAgentOriginalKey), s.agent))
	}
	if s.flags != "" {
		a = append(a, str("veneer.response_flags", s.flags))
	}
	if s.requestID != "" {
		a = append(a, str("veneer.request_id", s.requestID))
	}
	return a
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func num(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// errorType is error.type: the status code, or what failed when there was
// no response.
func errorType(s *span) string {
	if s.status != 0 {
		return strconv.Itoa(s.status)
	}
	if s.flags != "" {
		return s.flags
	}
	return "_OTHER"
}
