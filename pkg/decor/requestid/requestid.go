// Package requestid gives each request an X-Request-Id when it has none, and
// carries W3C trace context: a valid traceparent is continued with a new
// span of the agent's own, a missing or invalid one starts a trace.
// tracestate and B3 headers pass through untouched.
//
//	requestId: true   # X-Request-Id
//	tracing: true     # traceparent, and a span per request when spans are exported
//
// The id is in the access log (request_id) and is sent back to the client.
// With an exporter of spans (the agent's --otlp-endpoint), a new trace is
// sampled at the exporter's ratio and a continued one as its sampled flag
// says (parent-based, as Envoy does); every sampled request's span is
// handed to the exporter when the exchange ends.
package requestid

import (
	"crypto/rand"
	"encoding/hex"
	"unsafe"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// The switches' keys in an http section; left out, each is off.
const (
	KeyRequestID = "requestId"
	KeyTracing   = "tracing"
)

// The kinds of the switches.
var (
	Switch        = config.Switch(KeyRequestID, false)
	TracingSwitch = config.Switch(KeyTracing, false)
)

// Spans takes the spans of sampled requests (pkg/agent/otlp's Exporter).
type Spans interface {
	// Sample says whether a trace the agent starts is recorded.
	Sample(trace [16]byte) bool
	// Export records x's span; it never blocks.
	Export(x *exchange.Exchange)
}

// IDs is a compiled requestId/tracing pair.
type IDs struct {
	requestID, tracing bool
	spans              Spans
}

// Traced is IDs that also export each sampled request's span when it ends.
type Traced struct{ IDs }

// New builds the decoration for the switches that are on.
func New(requestID, tracing bool) *IDs { return &IDs{requestID: requestID, tracing: tracing} }

// NewTraced builds it with tracing on, exporting spans to spans.
func NewTraced(requestID bool, spans Spans) *Traced {
	return &Traced{IDs{requestID: requestID, tracing: true, spans: spans}}
}

const (
	HeaderRequestID   = "X-Request-Id"
	HeaderTraceparent = "Traceparent"
)

// Name is the config key.
func (d *IDs) Name() string { return KeyRequestID }

// Request gives the request an id when it has none, and its span.
func (d *IDs) Request(x *exchange.Exchange) exchange.Verdict {
	if d.requestID {
		id := x.Request.Get(HeaderRequestID)
		if id == "" {
			id = uuidIn(x.IDMemory())
			x.Request.Set(HeaderRequestID, id)
		}
		x.RequestID = id
	}
	if d.tracing {
		var sample func([16]byte) bool
		if d.spans != nil {
			sample = d.spans.Sample
		}
		x.Trace = Continue(x.Request.Get(HeaderTraceparent), sample)
		x.Request.Set(HeaderTraceparent, x.Keep(AppendTraceparent(x.Scratch(), &x.Trace)))
	}
	return exchange.Verdict{}
}

// Response sends the id back to the client.
func (d *IDs) Response(x *exchange.Exchange) {
	if x.RequestID != "" {
		x.Response.Set(HeaderRequestID, x.RequestID)
	}
}

// Done hands a sampled request's span to the exporter.
func (d *Traced) Done(x *exchange.Exchange) {
	if x.Trace.Sampled() {
		d.spans.Export(x)
	}
}

// Continue is the trace context the agent sends on for a request that came
// with traceparent tp: tp's trace and flags with a new span of the agent's,
// or, when tp is not a valid version-00 traceparent, a new trace, sampled
// when sample says so (always, with sample nil).
func Continue(tp string, sample func([16]byte) bool) exchange.Trace {
	var t exchange.Trace
	rand.Read(t.Span[:])
	if trace, parent, flags, ok := parse(tp); ok {
		hex.Decode(t.ID[:], []byte(trace))
		hex.Decode(t.Parent[:], []byte(parent))
		var f [1]byte
		hex.Decode(f[:], []byte(flags))
		t.Flags = f[0]
		return t
	}
	rand.Read(t.ID[:])
	if sample == nil || sample(t.ID) {
		t.Flags = 1
	}
	return t
}

// AppendTraceparent appends t as a traceparent, the agent's span as the
// parent.
func AppendTraceparent(b []byte, t *exchange.Trace) []byte {
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, t.ID[:])
	b = hex.AppendEncode(append(b, '-'), t.Span[:])
	return hex.AppendEncode(append(b, '-'), []byte{t.Flags})
}

// TraceID is the trace id of a valid version-00 traceparent, "" for any
// other value.
func TraceID(tp string) string {
	trace, _, _, _ := parse(tp)
	return trace
}

// parse checks a traceparent: 00-<32 hex trace id, not all zero>-<16 hex
// parent id, not all zero>-<2 hex flags>.
func parse(tp string) (trace, parent, flags string, ok bool) {
	if len(tp) != 55 || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return "", "", "", false
	}
	trace, parent, flags = tp[3:35], tp[36:52], tp[53:]
	if !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) || allZero(trace) || allZero(parent) {
		return "", "", "", false
	}
	return trace, parent, flags, true
}

func lowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for _, c := range []byte(s) {
		if c != '0' {
			return false
		}
	}
	return true
}

// uuidIn writes a random (version 4) UUID into s and returns it, a view of s.
func uuidIn(s *[36]byte) string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return unsafe.String(&s[0], len(s))
}
