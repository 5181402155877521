// Package accesslog writes one JSON line per HTTP request, with the fields
// of Envoy's default access log, to the agent's standard output.
//
//	accessLog: true   # the default
//
//	{"start_time":"2026-11-25T14:29:51.123Z","method":"GET","path":"/","protocol":"HTTP/1.1",
//	 "status":200,"response_flags":"-","bytes_received":0,"bytes_sent":267,"duration_ms":1.9,
//	 "upstream_service_time_ms":1.2,"x_forwarded_for":"","user_agent":"curl/7.88.1",
//	 "request_id":"...","authority":"10.213.0.2:8080","upstream_host":"10.213.0.2:8080",
//	 "client_address":"10.213.0.1:52696"}
package accesslog

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
)

// Field names, Envoy's.
const (
	fStart    = "start_time"
	fMethod   = "method"
	fPath     = "path"
	fProto    = "protocol"
	fStatus   = "status"
	fFlags    = "response_flags"
	fRecv     = "bytes_received"
	fSent     = "bytes_sent"
	fDuration = "duration_ms"
	fUpstream = "upstream_service_time_ms"
	fXFF      = "x_forwarded_for"
	fUA       = "user_agent"
	fReqID    = "request_id"
	fAuth     = "authority"
	fUpHost   = "upstream_host"
	fClient   = "client_address"
	fDir      = "direction"        // veneer's own: inbound or outbound
	fFailure  = "upstream_failure" // veneer's own: why the app could not answer, when it could not
)

// Key is the switch's key in an http section; left out of a port's
// section, it is on.
const Key = "accessLog"

// Switch is the kind of the switch.
var Switch = config.Switch(Key, true)

// Log writes access log lines to out.
type Log struct{ out io.Writer }

// New writes lines to out, one Write per line (the agent's log sink).
func New(out io.Writer) *Log { return &Log{out: out} }

// Name is the config key.
func (l *Log) Name() string { return Key }

// lines are the buffers lines are made in: a Log is shared by the loops.
var lines = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Done writes the exchange's line. It is made by hand, field after field
// into a pooled buffer: zerolog's events cost twice as much per line
// (BenchmarkDone: 988 against 527 ns), and the line is the most expensive
// thing the default chain does.
func (l *Log) Done(ex *exchange.Exchange) {
	status := ex.Status
	if status == 0 && ex.Request != nil && ex.Request.Get("Upgrade") != "" {
		status = http.StatusSwitchingProtocols // hijacked for a WebSocket
	}
	reqID := ""
	if ex.Request != nil {
		reqID = ex.Request.Get("X-Request-Id")
	}
	bp := lines.Get().(*[]byte)
	b := append((*bp)[:0], `{"`+fStart+`":"`...)
	b = ex.Start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = str(append(b, `","`+fMethod+`":`...), ex.Method)
	b = str(append(b, `,"`+fPath+`":`...), ex.Target)
	b = str(append(b, `,"`+fProto+`":`...), ex.Proto)
	b = strconv.AppendInt(append(b, `,"`+fStatus+`":`...), int64(status), 10)
	b = str(append(b, `,"`+fFlags+`":`...), ex.Flags().String())
	b = strconv.AppendInt(append(b, `,"`+fRecv+`":`...), ex.Received(), 10)
	b = strconv.AppendInt(append(b, `,"`+fSent+`":`...), ex.Sent, 10)
	b = ms(append(b, `,"`+fDuration+`":`...), time.Since(ex.Start))
	b = append(b, `,"`+fUpstream+`":`...)
	if up := ex.UpstreamTime(); up >= 0 {
		b = ms(b, up)
	} else {
		b = append(b, `"-"`...)
	}
	b = str(append(b, `,"`+fXFF+`":`...), ex.ForwardedFor)
	b = str(append(b, `,"`+fUA+`":`...), ex.UserAgent)
	b = str(append(b, `,"`+fReqID+`":`...), reqID)
	b = str(append(b, `,"`+fAuth+`":`...), ex.Host)
	b = str(append(b, `,"`+fDir+`":`...), ex.Direction)
	b = append(ex.Upstream.AppendTo(append(b, `,"`+fUpHost+`":"`...)), '"')
	b = append(ex.Client.AppendTo(append(b, `,"`+fClient+`":"`...)), '"')
	if f := ex.Failure(); f != "" {
		b = str(append(b, `,"`+fFailure+`":`...), f)
	}
	b = append(b, "}\n"...)
	l.out.Write(b) // the sink takes a copy; an error has nowhere better to go
	if cap(b) <= 64<<10 {
		*bp = b
		lines.Put(bp)
	}
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
