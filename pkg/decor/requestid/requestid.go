// Package requestid gives each request an X-Request-Id when it has none, and
// carries W3C trace context: a valid traceparent is continued with a new
// span of the agent's own, a missing or invalid one starts a trace.
// tracestate and B3 headers pass through untouched.
//
//	requestId: true   # X-Request-Id
//	tracing: true     # traceparent
//
// The id is in the access log (request_id) and is sent back to the client.
package requestid

import (
	"crypto/rand"
	"encoding/hex"
	"unsafe"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
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

// IDs is a compiled requestId/tracing pair.
type IDs struct {
	requestID, tracing bool
}

// New builds the decoration for the switches that are on.
func New(requestID, tracing bool) *IDs { return &IDs{requestID: requestID, tracing: tracing} }

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
		tp := AppendContinue(x.Scratch(), x.Request.Get(HeaderTraceparent))
		x.Request.Set(HeaderTraceparent, x.Keep(tp))
	}
	return exchange.Verdict{}
}

// Response sends the id back to the client.
func (d *IDs) Response(x *exchange.Exchange) {
	if x.RequestID != "" {
		x.Response.Set(HeaderRequestID, x.RequestID)
	}
}

// AppendContinue appends the traceparent the agent sends on: the same
// trace and flags with a new parent (span) id, or a new sampled trace when
// tp is not a valid version-00 traceparent.
func AppendContinue(b []byte, tp string) []byte {
	var span [8]byte
	rand.Read(span[:])
	b = append(b, "00-"...)
	trace, flags, ok := parse(tp)
	if ok {
		b = append(b, trace...)
	} else {
		var id [16]byte
		rand.Read(id[:])
		b = hex.AppendEncode(b, id[:])
		flags = "01"
	}
	b = hex.AppendEncode(append(b, '-'), span[:])
	return append(append(b, '-'), flags...)
}

// TraceID is the trace id of a valid version-00 traceparent, "" for any
// other value.
func TraceID(tp string) string {
	trace, _, _ := parse(tp)
	return trace
}

// parse checks a traceparent: 00-<32 hex trace id, not all zero>-<16 hex
// parent id, not all zero>-<2 hex flags>.
func parse(tp string) (trace, flags string, ok bool) {
	if len(tp) != 55 || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return "", "", false
	}
	trace, parent, flags := tp[3:35], tp[36:52], tp[53:]
	if !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) || allZero(trace) || allZero(parent) {
		return "", "", false
	}
	return trace, flags, true
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

// uuid is a random (version 4) UUID.
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
