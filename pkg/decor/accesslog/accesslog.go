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
	"net/http"
	"time"

	"github.com/rs/zerolog"

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

// Log writes access log lines to its logger.
type Log struct{ log zerolog.Logger }

// New logs to log, which should write to standard output with no fields
// of its own.
func New(log zerolog.Logger) *Log { return &Log{log: log} }

// Name is the config key.
func (l *Log) Name() string { return Key }

// Done writes the exchange's line.
func (l *Log) Done(ex *exchange.Exchange) {
	status, sent := ex.Status, ex.Sent
	if status == 0 && ex.Request != nil && ex.Request.Get("Upgrade") != "" {
		status = http.StatusSwitchingProtocols // hijacked for a WebSocket
	}
	reqID := ""
	if ex.Request != nil {
		reqID = ex.Request.Get("X-Request-Id")
	}
	// Times and addresses are appended as JSON strings in place (they need
	// no escaping): formatting them to strings first would allocate, and
	// so would a buffer the compiler cannot keep on the stack (one passed
	// through a closure).
	var buf [64]byte
	b := append(ex.Start.UTC().AppendFormat(append(buf[:0], '"'), time.RFC3339Nano), '"')
	e := l.log.Log().
		RawJSON(fStart, b).
		Str(fMethod, ex.Method).
		Str(fPath, ex.Target).
		Str(fProto, ex.Proto).
		Int(fStatus, status).
		Str(fFlags, ex.Flags().String()).
		Int64(fRecv, ex.Received()).
		Int64(fSent, sent).
		Float64(fDuration, ms(time.Since(ex.Start)))
	if up := ex.UpstreamTime(); up >= 0 {
		e = e.Float64(fUpstream, ms(up))
	} else {
		e = e.Str(fUpstream, "-")
	}
	e = e.Str(fXFF, ex.ForwardedFor).
		Str(fUA, ex.UserAgent).
		Str(fReqID, reqID).
		Str(fAuth, ex.Host).
		Str(fDir, ex.Direction)
	e.RawJSON(fUpHost, append(ex.Upstream.AppendTo(append(buf[:0], '"')), '"'))
	e.RawJSON(fClient, append(ex.Client.AppendTo(append(buf[:0], '"')), '"'))
	if f := ex.Failure(); f != "" {
		e = e.Str(fFailure, f)
	}
	e.Send()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
