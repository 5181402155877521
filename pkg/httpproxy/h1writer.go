package httpproxy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1writer is the loop's http.ResponseWriter: it frames the response as
// net/http's server does (the Content-Length given, else chunked for
// HTTP/1.1 and close-delimited for HTTP/1.0; a short body of unknown length
// held back to be sent with a Content-Length), and decides whether the
// connection stays open.
type h1writer struct {
	h      *h1conn
	req    *http.Request
	header http.Header

	status     int   // 0 until WriteHeader
	committed  bool  // the head is written
	length     int64 // the Content-Length sent, -1 for none
	written    int64 // body bytes written
	chunked    bool
	trailers   []string // the trailer names announced
	closeAfter bool
	held       []byte // body of unknown length held back, up to maxHeld
}

// maxHeld is how much of a body of unknown length is held back in the hope
// that it is all of it, as net/http's server does.
const maxHeld = 2 << 10

func (w *h1writer) Header() http.Header { return w.header }

func (w *h1writer) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic("httpproxy: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// 103 Early Hints and the like: sent now, more to come.
		w.statusLine(code)
		w.header.Write(w.h.bw)
		w.h.bw.WriteString("\r\n")
		w.h.bw.Flush()
		return
	}
	w.status = code
	if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.length = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

// bodyless reports whether the response has no body: HEAD, 1xx, 204, 304.
func (w *h1writer) bodyless() bool { return w.req.Method == "HEAD" || noBodyStatus(w.status) }

// noBodyStatus reports whether a response of status never has a body.
func noBodyStatus(status int) bool {
	return status < 200 || status == http.StatusNoContent || status == http.StatusNotModified
}

func (w *h1writer) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.bodyless() {
		if w.req.Method == "HEAD" {
			return len(b), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(b)) > w.length {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if w.length < 0 && len(w.held)+len(b) <= maxHeld && !w.hasTrailers() {
			w.held = append(w.held, b...)
			w.written += int64(len(b))
			return len(b), nil
		}
		w.commit(false)
	}
	n, err := w.body(b)
	w.written += int64(n)
	return n, err
}

// body writes b as the framing decided.
func (w *h1writer) body(b []byte) (int, error) {
	if !w.chunked || len(b) == 0 {
		return w.h.bw.Write(b)
	}
	var hex [16]byte
	w.h.bw.Write(strconv.AppendInt(hex[:0], int64(len(b)), 16))
	w.h.bw.WriteString("\r\n")
	n, err := w.h.bw.Write(b)
	w.h.bw.WriteString("\r\n")
	return n, err
}

// Flush sends what is written so far; a body of unknown length is chunked
// from then on.
func (w *h1writer) Flush() { w.FlushError() }

// FlushError is Flush, for http.ResponseController.
func (w *h1writer) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	return w.h.bw.Flush()
}

// SetReadDeadline is for http.ResponseController: the request body's idle
// bound.
func (w *h1writer) SetReadDeadline(t time.Time) error { return w.h.c.SetReadDeadline(t) }

// SetWriteDeadline is for http.ResponseController.
func (w *h1writer) SetWriteDeadline(t time.Time) error { return w.h.c.SetWriteDeadline(t) }

func (w *h1writer) hasTrailers() bool {
	if len(w.header["Trailer"]) > 0 {
		return true
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// commit writes the head. final: the handler is done, so a body of unknown
// length is all in w.held.
func (w *h1writer) commit(final bool) {
	w.committed = true
	h, req := w.header, w.req
	for _, v := range h["Trailer"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				w.trailers = append(w.trailers, f)
			}
		}
	}
	h.Del("Transfer-Encoding") // the framing is this writer's
	trailers := w.hasTrailers()
	switch {
	case w.bodyless():
		if noBodyStatus(w.status) {
			// No body by its status: no length either, as net/http (a HEAD
			// answer keeps the length its GET would have).
			h.Del("Content-Length")
			w.length = -1
		}
		if w.status == http.StatusNotModified {
			h.Del("Content-Type")
		}
	case w.length >= 0:
	case final && !trailers:
		w.length = int64(len(w.held))
		h["Content-Length"] = []string{strconv.Itoa(len(w.held))}
	case req.ProtoAtLeast(1, 1):
		w.chunked = true
		h["Transfer-Encoding"] = []string{"chunked"}
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}

	// Keep the connection? As net/http decides.
	conn := h["Connection"]
	switch {
	case httpguts.HeaderValuesContainsToken(conn, "close"):
		w.closeAfter = true
	case req.ProtoMajor == 1 && req.ProtoMinor == 0:
		if !req.Close && !w.closeAfter && (w.length >= 0 || w.bodyless()) {
			if len(conn) == 0 {
				h["Connection"] = []string{"keep-alive"}
			}
		} else {
			w.closeAfter = true
		}
	case req.Close:
		w.closeAfter = true
	}
	if !w.closeAfter && req.ContentLength != 0 && !w.discardBody() {
		w.closeAfter = true
	}
	if w.closeAfter && req.ProtoAtLeast(1, 1) && !httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		h["Connection"] = []string{"close"}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{httpDate()}
	}

	w.statusLine(w.status)
	if trailers {
		exclude := map[string]bool{}
		for k := range h {
			if strings.HasPrefix(k, http.TrailerPrefix) {
				exclude[k] = true
			}
		}
		h.WriteSubset(w.h.bw, exclude)
	} else {
		h.Write(w.h.bw)
	}
	w.h.bw.WriteString("\r\n")
	if len(w.held) > 0 {
		w.body(w.held)
		w.held = nil
	}
}

// discardBody reads off what the chain left of the request body, up to
// maxDiscard, so that the next request can be read; false: too much, or
// it failed, and the connection must close. (Before the response, as
// net/http: some clients send all of a request before reading.)
func (w *h1writer) discardBody() bool {
	w.h.c.SetReadDeadline(time.Now().Add(w.h.s.bodyIdle))
	defer w.h.c.SetReadDeadline(time.Time{})
	_, err := io.CopyN(io.Discard, w.req.Body, maxDiscard+1)
	// EOF: all read; ErrBodyReadAfterClose: closed, which reads it all.
	return err == io.EOF || err == http.ErrBodyReadAfterClose
}

// finish ends the response once the chain returned.
func (w *h1writer) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked {
		w.h.bw.WriteString("0\r\n")
		if t := w.finalTrailers(); t != nil {
			t.Write(w.h.bw)
		}
		w.h.bw.WriteString("\r\n")
	} else if w.length >= 0 && w.written < w.length && !w.bodyless() {
		w.closeAfter = true // the client waits for bytes that will not come
	}
}

// finalTrailers are the trailers set after the head: those announced, and
// those named with http.TrailerPrefix.
func (w *h1writer) finalTrailers() http.Header {
	var t http.Header
	for _, k := range w.trailers {
		if vv, ok := w.header[http.CanonicalHeaderKey(k)]; ok {
			if t == nil {
				t = http.Header{}
			}
			t[http.CanonicalHeaderKey(k)] = vv
		}
	}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = http.Header{}
			}
			t[name] = vv
		}
	}
	return t
}

// statusLine writes "HTTP/1.x code text".
func (w *h1writer) statusLine(code int) {
	bw := w.h.bw
	if w.req.ProtoAtLeast(1, 1) {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	var num [8]byte
	bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code " + strconv.Itoa(code))
	}
	bw.WriteString("\r\n")
}

// httpDate is the Date header's value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := date.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	date.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var date atomic.Pointer[dateText]
