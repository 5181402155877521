// Package exchange is one HTTP request and its response as the decorations
// see them (pkg/decor): the request's method, path and header, the
// response's status and header, and the record of what happened on the way:
// what the decorations decided (response flags, a Verdict), how long the
// app took, how many bytes went each way. The serving path fills it in; the
// decorations read and change it through their hooks; the access log and
// the metrics read it when it is done. No net/http type is in the view, so
// the same decorations serve the event loop's HTTP path and net/http's.
//
//	ex := exchange.From(r.Context())
//	if !allowed(ex.Method, ex.Path) { return exchange.Verdict{Status: 403, Flag: exchange.Denied, Why: "denied"} }
package exchange

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// Flag is an Envoy-style response flag: why the agent, not the app, shaped
// a response. Envoy's names where one fits.
type Flag uint16

const (
	UpstreamFailure  Flag = 1 << iota // UF: the app could not be reached
	UpstreamTimeout                   // UT: the app did not answer in time
	RateLimited                       // RL: local rate limit
	FaultAbort                        // FI: fault injection aborted the request
	FaultDelay                        // DI: fault injection delayed the request
	UpstreamOverflow                  // UO: circuit breaker: too many requests in flight
	UpstreamReset                     // UC: the app closed or reset mid-response
	Denied                            // DENY: authorization denied (veneer's own)
	RetriesExhausted                  // URX: every retry failed
	DownstreamReset                   // DC: the client went away before the response ended
	Malformed                         // DPE: the request was not valid HTTP (Envoy's downstream protocol error)
)

var flagNames = []struct {
	f    Flag
	name string
}{
	{UpstreamFailure, "UF"}, {UpstreamTimeout, "UT"}, {RateLimited, "RL"}, {FaultAbort, "FI"},
	{FaultDelay, "DI"}, {UpstreamOverflow, "UO"}, {UpstreamReset, "UC"}, {Denied, "DENY"},
	{RetriesExhausted, "URX"}, {DownstreamReset, "DC"}, {Malformed, "DPE"},
}

// String is the flags as the access log and the metrics show them:
// comma-separated, or "-" for none, as Envoy does.
func (f Flag) String() string {
	if f == 0 {
		return "-"
	}
	var b strings.Builder
	for _, n := range flagNames {
		if f&n.f != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n.name)
		}
	}
	return b.String()
}

// ParseFlag is the flag named name ("UF"), as String writes it.
func ParseFlag(name string) (Flag, bool) {
	for _, n := range flagNames {
		if n.name == name {
			return n.f, true
		}
	}
	return 0, false
}

// FlagNames are every flag's name, in String's order.
func FlagNames() []string {
	names := make([]string, len(flagNames))
	for i, n := range flagNames {
		names[i] = n.name
	}
	return names
}

// Header is a message's header as the decorations see and change it, by
// case-insensitive name. net/http's http.Header is one.
type Header interface {
	Get(name string) string
	Values(name string) []string
	Set(name, value string)
	Add(name, value string)
	Del(name string)
}

// Trace is a W3C trace context: the trace, the agent's own span in it (the
// parent the app sees), the client's span it continued, if any, and the
// flags (bit 0: sampled).
type Trace struct {
	ID     [16]byte
	Span   [8]byte
	Parent [8]byte // zero when the agent started the trace
	Flags  byte
}

// Sampled says whether the trace is recorded (its sampled flag).
func (t *Trace) Sampled() bool { return t.Flags&1 != 0 }

// Valid says whether t was set: a trace id is never all zero.
func (t *Trace) Valid() bool { return t.ID != [16]byte{} }

// Verdict is what a decoration's Request hook decides: the zero Verdict lets
// the request go on.
type Verdict struct {
	// Delay holds the request this long first (a fault's delay), then the
	// rest of the verdict applies.
	Delay time.Duration
	// Status, when not 0, answers in the app's place (Reply) with Flag and
	// a body that says Why; the app never sees the request.
	Status int
	Flag   Flag
	Why    string
	// RetryAfter, in seconds, is sent as Retry-After (with a 429).
	RetryAfter int
}

// Exchange is one request's record. Fields set once before the request is
// passed on are plain; those written while the response streams are atomic.
type Exchange struct {
	Start     time.Time
	Direction string         // inbound (to the app) or outbound (from it)
	Port      uint16         // the original destination port
	Client    netip.AddrPort // the real client
	Upstream  netip.AddrPort // the app
	// TLS says the connection the request came on (inbound) or went out
	// on (outbound) is veneer's mTLS; Principal is the client's SPIFFE ID
	// the handshake verified (inbound; "" otherwise).
	TLS       bool
	Principal string
	Route     string // the matched path prefix, "" for the port's defaults

	// The request as the client sent it, set before the first decoration
	// runs: the method, the path (decoded) and the target (as sent, path
	// and query), the authority, the protocol ("HTTP/1.1"), and two fields
	// the access log reports as the client sent them.
	Method, Path, Target, Host, Proto string
	UserAgent, ForwardedFor           string
	// Request is the request's header: decorations change it on the way
	// to the app.
	Request Header
	// RequestID is the X-Request-Id the agent gave the request or kept,
	// echoed in the response ("" when request ids are off).
	RequestID string
	// Trace is the request's trace context as the agent sent it on (the
	// zero Trace when tracing is off).
	Trace Trace

	// The response: Status and Response (its header) are set just before
	// the head goes to the client, when the Response hooks run; Sent counts
	// the body bytes written.
	Status   int
	Response Header
	Sent     int64
	replace  *replacement

	// ConnectTimeout bounds connecting to the app for this exchange, as its
	// chain says; 0: the agent's default. Set before the request is sent.
	ConnectTimeout time.Duration

	w Writer // the response as written on net/http's path (Begin's): one allocation with the exchange

	id  [36]byte // IDMemory's
	mem []byte   // Scratch's: strings made for this exchange; the array is kept by Reset

	flags        atomic.Uint32
	upstreamTime atomic.Int64 // nanoseconds until the app's response headers
	received     atomic.Int64 // request body bytes read from the client
	bodyErr      atomic.Pointer[error]
	failure      atomic.Pointer[string] // why the app could not answer
}

// IDMemory is room for an id a decoration makes for this exchange (the
// request id): a string viewing it is valid for the exchange's life, so
// making one allocates nothing.
func (e *Exchange) IDMemory() *[36]byte { return &e.id }

// Scratch is room to append a string a decoration makes for this exchange
// (a header value) to; Keep then makes it a string valid for the
// exchange's life. Once a connection's first exchanges have grown the
// room, making one allocates nothing.
//
//	v := x.Keep(client.AppendTo(append(x.Scratch(), "for="...)))
func (e *Exchange) Scratch() []byte {
	if cap(e.mem)-len(e.mem) < 128 {
		// Room for the usual strings of an exchange (forwarding headers, a
		// traceparent): those of this exchange made so far keep the old array.
		e.mem = make([]byte, 0, max(512, 2*cap(e.mem)))
	}
	return e.mem[len(e.mem):]
}

// Keep is b, appended to Scratch(), as a string for the exchange's life.
func (e *Exchange) Keep(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if n := len(e.mem); cap(e.mem) > n && &e.mem[:n+1][n] == &b[0] {
		e.mem = e.mem[:n+len(b)]
	} else {
		e.mem = b // grown into a new array: the strings made before keep the old one
	}
	return unsafe.String(&b[0], len(b))
}

// Reset makes e a fresh record for the next exchange of the event loop's
// path, which keeps one per connection: its scratch room is reused.
func (e *Exchange) Reset() {
	mem := e.mem[:0]
	*e = Exchange{mem: mem}
}

// replacement is a body a Response hook put in the app's place.
type replacement struct {
	contentType string
	body        []byte
}

// Replace makes the response's body this one instead of the app's (an
// error page): the serving path sends it with its own length and type and
// drops the app's body. Called from a Response hook.
func (e *Exchange) Replace(contentType string, body []byte) {
	e.replace = &replacement{contentType: contentType, body: body}
}

// Replacement is the body Replace put in the app's place, if any.
func (e *Exchange) Replacement() (contentType string, body []byte, ok bool) {
	if e.replace == nil {
		return "", nil, false
	}
	return e.replace.contentType, e.replace.body, true
}

// SetFailure records why the app could not answer (a dial or read error).
func (e *Exchange) SetFailure(why string) { e.failure.Store(&why) }

// Failure is why the app could not answer, or "".
func (e *Exchange) Failure() string {
	if p := e.failure.Load(); p != nil {
		return *p
	}
	return ""
}

// Begin starts the record of r: it wraps w and r's body to count what
// passes, and puts e in r's context. The outermost decoration calls it.
// bodyIdle, when not zero, bounds the wait for each read of the request
// body, so that a client dribbling its body holds nothing for long.
func Begin(w http.ResponseWriter, r *http.Request, e *Exchange, bodyIdle time.Duration) (*Writer, *http.Request) {
	e.w = Writer{ResponseWriter: w, ex: e}
	r = r.WithContext(With(r.Context(), e))
	e.Method, e.Path, e.Target, e.Host, e.Proto = r.Method, r.URL.Path, r.URL.RequestURI(), r.Host, r.Proto
	e.UserAgent, e.ForwardedFor = r.Header.Get("User-Agent"), r.Header.Get("X-Forwarded-For")
	e.Request = r.Header
	if r.Body != nil && r.Body != http.NoBody {
		b := &countingBody{ReadCloser: r.Body, e: e, idle: bodyIdle}
		if bodyIdle > 0 {
			b.rc = http.NewResponseController(w)
		}
		r.Body = b
	}
	return &e.w, r
}

// AddReceived counts n request body bytes read from the client (the event
// loop's path, which reads the body itself).
func (e *Exchange) AddReceived(n int64) { e.received.Add(n) }

// SetBodyErr records that reading the request body from the client failed.
func (e *Exchange) SetBodyErr(err error) { e.bodyErr.CompareAndSwap(nil, &err) }

// Received is the request body bytes read from the client so far.
func (e *Exchange) Received() int64 { return e.received.Load() }

// BodyErr is the error reading the request body from the client failed
// with (a malformed chunk, a client that stalled or went away), or nil.
func (e *Exchange) BodyErr() error {
	if p := e.bodyErr.Load(); p != nil {
		return *p
	}
	return nil
}

type countingBody struct {
	io.ReadCloser
	e    *Exchange
	rc   *http.ResponseController
	idle time.Duration
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.rc != nil {
		b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.ReadCloser.Read(p)
	b.e.received.Add(int64(n))
	if err != nil && err != io.EOF {
		b.e.bodyErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

// AddFlag records f.
func (e *Exchange) AddFlag(f Flag) {
	for {
		old := e.flags.Load()
		if e.flags.CompareAndSwap(old, old|uint32(f)) {
			return
		}
	}
}

// Flags are the flags recorded so far.
func (e *Exchange) Flags() Flag { return Flag(e.flags.Load()) }

// SetUpstreamTime records how long the app took to answer with headers.
func (e *Exchange) SetUpstreamTime(d time.Duration) { e.upstreamTime.Store(int64(d)) }

// UpstreamTime is how long the app took, or -1 when it never answered.
func (e *Exchange) UpstreamTime() time.Duration {
	if d := e.upstreamTime.Load(); d != 0 {
		return time.Duration(d)
	}
	return -1
}

type key struct{}

// With returns ctx carrying e.
func With(ctx context.Context, e *Exchange) context.Context { return context.WithValue(ctx, key{}, e) }

// From returns the exchange in ctx; a fresh one if there is none, so that a
// decoration tested alone works.
func From(ctx context.Context) *Exchange {
	if e, ok := ctx.Value(key{}).(*Exchange); ok {
		return e
	}
	return &Exchange{Start: time.Now()}
}
