package exchange

import (
	"net/http"
	"strconv"
)

// Responder runs the Response hooks of the decorations a request went
// through (pkg/decor's Chain): the first wentOn of them, inner first.
type Responder interface {
	Response(e *Exchange, wentOn int)
}

// Writer wraps a ResponseWriter to record the status and the bytes written
// in the exchange, and to run the decorations' Response hooks just before
// the head is sent. It unwraps for http.ResponseController, so flushing
// and hijacking (WebSocket upgrades) reach the real writer.
type Writer struct {
	http.ResponseWriter
	ex     *Exchange
	sent   bool
	drop   bool // a replacement body went out: the app's is dropped
	hooks  Responder
	wentOn int
}

// Hooks makes the Response hooks of the first wentOn decorations of r run
// before the head is written.
func (w *Writer) Hooks(r Responder, wentOn int) { w.hooks, w.wentOn = r, wentOn }

func (w *Writer) WriteHeader(status int) {
	if w.sent {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		// 100 Continue and 103 Early Hints: informational, more to come.
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.sent = true
	e := w.ex
	e.Status = status
	h := w.ResponseWriter.Header()
	e.Response = h
	if w.hooks != nil {
		w.hooks.Response(e, w.wentOn)
	}
	ct, body, ok := e.Replacement()
	if !ok {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	for _, k := range []string{"Content-Encoding", "Content-Length", "Content-Range", "Etag", "Last-Modified", "Transfer-Encoding"} {
		h.Del(k)
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.ResponseWriter.WriteHeader(status)
	if e.Method != http.MethodHead {
		n, _ := w.ResponseWriter.Write(body)
		e.Sent += int64(n)
	}
	w.drop = true
}

func (w *Writer) Write(b []byte) (int, error) {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	if w.drop {
		return len(b), nil // the app's body, in place of which a replacement went
	}
	n, err := w.ResponseWriter.Write(b)
	w.ex.Sent += int64(n)
	return n, err
}

// Unwrap is for http.ResponseController.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes a flush on; ReverseProxy flushes streamed responses.
func (w *Writer) Flush() {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	if !w.drop {
		http.NewResponseController(w.ResponseWriter).Flush()
	}
}
