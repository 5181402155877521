// Package accesslog writes one JSON line per HTTP request, with the fields
// of Envoy's default access log, to the agent's standard output.
//
//	accessLog: true   # the default: every default field
//	accessLog: false  # no access log
//	accessLog:        # the fields to write, and fields from headers
//	  fields: [start_time, method, path, status, duration_ms, request_id, trace_id]
//	  requestHeaders: {tenant: X-Tenant-Id}        # field: header
//	  responseHeaders: {cache: X-Cache-Status}
//
//	{"start_time":"2026-11-25T14:29:51.123Z","method":"GET","path":"/","protocol":"HTTP/1.1",
//	 "status":200,"response_flags":"-","bytes_received":0,"bytes_sent":267,"duration_ms":1.9,
//	 "upstream_service_time_ms":1.2,"x_forwarded_for":"","user_agent":"curl/7.88.1",
//	 "request_id":"...","authority":"10.213.0.2:8080","direction":"inbound",
//	 "upstream_host":"10.213.0.2:8080","client_address":"10.213.0.1:52696","tls":true,
//	 "peer_principal":"spiffe://cluster.local/ns/shop/sa/web"}
package accesslog

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
	"github.com/veneermesh/veneer/pkg/decor/requestid"
)

// What a field holds.
type source uint8

const (
	sStart source = iota
	sMethod
	sPath
	sProto
	sStatus
	sFlags
	sRecv
	sSent
	sDuration
	sUpstream
	sXFF
	sUA
	sReqID
	sAuth
	sDir
	sUpHost
	sClient
	sFailure
	sTraceID
	sRoute
	sTLS
	sPrincipal
	sRequestHeader
	sResponseHeader
)

// Fields are the fields a line can have, by name (Envoy's names where it
// has the field), in the default line's order.
var Fields = []Field{
	{"start_time", sStart, true},
	{"method", sMethod, true},
	{"path", sPath, true}, // the target as sent: path and query
	{"protocol", sProto, true},
	{"status", sStatus, true},
	{"response_flags", sFlags, true},
	{"bytes_received", sRecv, true},
	{"bytes_sent", sSent, true},
	{"duration_ms", sDuration, true},
	{"upstream_service_time_ms", sUpstream, true}, // "-" when the app did not answer
	{"x_forwarded_for", sXFF, true},               // as the client sent it
	{"user_agent", sUA, true},
	{"request_id", sReqID, true},
	{"authority", sAuth, true},
	{"direction", sDir, true}, // veneer's own: inbound or outbound
	{"upstream_host", sUpHost, true},
	{"client_address", sClient, true},
	{"upstream_failure", sFailure, true}, // veneer's own: why the app could not answer; only when it could not
	{"tls", sTLS, true},                  // veneer's own: the request came (inbound) or went (outbound) over veneer's mTLS
	{"peer_principal", sPrincipal, true}, // inbound mTLS: the client's verified SPIFFE ID; only when there is one
	{"trace_id", sTraceID, false},        // of the traceparent sent on, "" when none
	{"route", sRoute, false},             // the matched route's prefix, "" for the port's defaults
}

// Field is a field a line can have.
type Field struct {
	Name    string
	src     source
	Default bool // in the line when the block names no fields
}

// fieldNamed is the index in Fields of the field named name, or -1.
func fieldNamed(name string) int {
	return slices.IndexFunc(Fields, func(f Field) bool { return f.Name == name })
}

// Key is the block's key in an http section; left out of a port's
// section, the access log is on with every default field.
const Key = "accessLog"

// Config is the access log's block: true (the defaults), false, or a
// mapping of these settings, which turns it on.
type Config struct {
	// Off is set by "accessLog: false".
	Off bool `yaml:"-" json:"off,omitempty"`
	// Fields are the line's fields from Fields, in the order given; left
	// out, every default field. An empty list writes only the header
	// fields.
	Fields []string `yaml:"fields" json:"fields,omitempty"`
	// RequestHeaders adds a field per entry, its key the field's name, its
	// value the request header the field holds (the first value, as the
	// app was sent it; "" when the request had none), in the order given.
	RequestHeaders Headers `yaml:"requestHeaders" json:"requestHeaders,omitempty"`
	// ResponseHeaders adds fields from the response header, as
	// RequestHeaders does, as the client was sent it.
	ResponseHeaders Headers `yaml:"responseHeaders" json:"responseHeaders,omitempty"`
}

// Headers are fields from headers, in the order the block has them.
type Headers []Header

// Header is one field from a header.
type Header struct {
	Field  string `json:"field"`
	Header string `json:"header"`
}

// UnmarshalYAML reads a mapping of field name to header name, keeping its
// order.
func (h *Headers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: not a mapping of field names to header names", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: not a field name and a header name", k.Line)
		}
		*h = append(*h, Header{Field: k.Value, Header: v.Value})
	}
	return nil
}

// Block is the kind of the block.
var Block = config.KindOf(Key, decode, Config{})

func decode(n *yaml.Node) (any, error) {
	var c Config
	if n.Kind == yaml.ScalarNode {
		var on bool
		if err := n.Decode(&on); err != nil {
			return nil, fmt.Errorf("line %d: %q is not true, false or a mapping of settings (fields, requestHeaders, responseHeaders)", n.Line, n.Value)
		}
		c.Off = !on
		return c, nil
	}
	if err := config.Strict(n, &c); err != nil {
		return nil, err
	}
	if err := c.Provision(); err != nil {
		return nil, err
	}
	return c, nil
}

// Provision checks the field names and the header names.
func (c *Config) Provision() error {
	seen := map[string]bool{}
	for i, f := range c.Fields {
		if fieldNamed(f) < 0 {
			return config.Errorf(fmt.Sprintf("fields[%d]", i), "%q is not a field (%s)", f, strings.Join(names(), ", "))
		}
		if seen[f] {
			return config.Errorf(fmt.Sprintf("fields[%d]", i), "%q is listed twice", f)
		}
		seen[f] = true
	}
	for _, hs := range []struct {
		key string
		hs  Headers
	}{{"requestHeaders", c.RequestHeaders}, {"responseHeaders", c.ResponseHeaders}} {
		for _, h := range hs.hs {
			switch {
			case !fieldName(h.Field):
				return config.Errorf(hs.key, "%q is not a field name (letters, digits, '_', '-' and '.', up to 64)", h.Field)
			case fieldNamed(h.Field) >= 0:
				return config.Errorf(hs.key, "%q is a field of the line already: name it otherwise", h.Field)
			case seen[h.Field]:
				return config.Errorf(hs.key, "field %q is named twice", h.Field)
			case !http1.Token(h.Header) || h.Header == "":
				return config.Errorf(hs.key+"."+h.Field, "%q is not a header name", h.Header)
			}
			seen[h.Field] = true
		}
	}
	if c.Fields != nil && len(c.Fields) == 0 && len(c.RequestHeaders)+len(c.ResponseHeaders) == 0 {
		return config.Errorf("fields", "an empty list and no header fields leave nothing to log: say accessLog: false")
	}
	return nil
}

func names() []string {
	var ns []string
	for _, f := range Fields {
		ns = append(ns, f.Name)
	}
	return ns
}

func fieldName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// field is one field of the line as Done writes it.
type field struct {
	src    source
	key    string // `,"name":`
	header string // a header field's header, in canonical form
}

// Log writes access log lines to out.
type Log struct {
	out    io.Writer
	fields []field
}

// New writes lines with c's fields to out, one Write per line (the
// agent's log sink). c is as Provision left it.
func New(c Config, out io.Writer) *Log {
	l := &Log{out: out}
	key := func(name string) string { return "," + strconv.Quote(name) + ":" }
	picked := c.Fields // in the order given
	if picked == nil {
		for _, f := range Fields {
			if f.Default {
				picked = append(picked, f.Name)
			}
		}
	}
	for _, name := range picked {
		l.fields = append(l.fields, field{src: Fields[fieldNamed(name)].src, key: key(name)})
	}
	for _, h := range c.RequestHeaders {
		l.fields = append(l.fields, field{src: sRequestHeader, key: key(h.Field), header: http.CanonicalHeaderKey(h.Header)})
	}
	for _, h := range c.ResponseHeaders {
		l.fields = append(l.fields, field{src: sResponseHeader, key: key(h.Field), header: http.CanonicalHeaderKey(h.Header)})
	}
	return l
}

// Name is the config key.
func (l *Log) Name() string { return Key }

// lines are the buffers lines are made in: a Log is shared by the loops.
var lines = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Done writes the exchange's line. It is made by hand, field after field
// into a pooled buffer: zerolog's events cost twice as much per line
// (BenchmarkDone: 988 against 527 ns), and the line is the most expensive
// thing the default chain does. Walking the configured fields costs ~100 ns
// a line more than the fixed line did (BenchmarkDone 372 to 470 ns).
func (l *Log) Done(ex *exchange.Exchange) {
	bp := lines.Get().(*[]byte)
	b := append((*bp)[:0], '{')
	failed := ex.Failure() != ""
	for i := range l.fields {
		f := &l.fields[i]
		if f.src == sFailure && !failed || f.src == sPrincipal && ex.Principal == "" {
			continue
		}
		b = append(b, f.key...)
		switch f.src {
		case sStart:
			b = append(ex.Start.UTC().AppendFormat(append(b, '"'), time.RFC3339Nano), '"')
		case sMethod:
			b = str(b, ex.Method)
		case sPath:
			b = str(b, ex.Target)
		case sProto:
			b = str(b, ex.Proto)
		case sStatus:
			status := ex.Status
			if status == 0 && ex.Request != nil && ex.Request.Get("Upgrade") != "" {
				status = http.StatusSwitchingProtocols // hijacked for a WebSocket
			}
			b = strconv.AppendInt(b, int64(status), 10)
		case sFlags:
			b = str(b, ex.Flags().String())
		case sRecv:
			b = strconv.AppendInt(b, ex.Received(), 10)
		case sSent:
			b = strconv.AppendInt(b, ex.Sent, 10)
		case sDuration:
			b = ms(b, time.Since(ex.Start))
		case sUpstream:
			if up := ex.UpstreamTime(); up >= 0 {
				b = ms(b, up)
			} else {
				b = append(b, `"-"`...)
			}
		case sXFF:
			b = str(b, ex.ForwardedFor)
		case sUA:
			b = str(b, ex.UserAgent)
		case sReqID:
			b = str(b, header(ex.Request, "X-Request-Id"))
		case sAuth:
			b = str(b, ex.Host)
		case sDir:
			b = str(b, ex.Direction)
		case sUpHost:
			b = append(ex.Upstream.AppendTo(append(b, '"')), '"')
		case sClient:
			b = append(ex.Client.AppendTo(append(b, '"')), '"')
		case sFailure:
			b = str(b, ex.Failure())
		case sTraceID:
			b = str(b, requestid.TraceID(header(ex.Request, requestid.HeaderTraceparent)))
		case sRoute:
			b = str(b, ex.Route)
		case sTLS:
			b = strconv.AppendBool(b, ex.TLS)
		case sPrincipal:
			b = str(b, ex.Principal)
		case sRequestHeader:
			b = str(b, header(ex.Request, f.header))
		case sResponseHeader:
			b = str(b, header(ex.Response, f.header))
		}
	}
	if len(b) > 1 {
		b = append(b[:1], b[2:]...) // the first field's comma
	}
	b = append(b, "}\n"...)
	l.out.Write(b) // the sink takes a copy; an error has nowhere better to go
	if cap(b) <= 64<<10 {
		*bp = b
		lines.Put(bp)
	}
}

func header(h exchange.Header, name string) string {
	if h == nil {
		return ""
	}
	return h.Get(name)
}

// ms appends d in milliseconds, to the microsecond.
func ms(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
}

// str appends s as a JSON string: quotes, backslashes and control bytes
// escaped, bytes that are not UTF-8 replaced by U+FFFD (a header value
// may hold anything but a control byte).
func str(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			if c < 0x20 {
				b = append(b, `\u00`...)
				b = append(b, hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, `\ufffd`...)
			}
		}
		i++
		start = i
	}
	return append(append(b, s[start:]...), '"')
}

const hex = "0123456789abcdef"
