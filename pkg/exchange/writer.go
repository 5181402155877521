package exchange

import (
	"net/http"
)

// Writer wraps a ResponseWriter to record the status and the bytes written,
// and to run hooks just before the header is sent (for decorations that
// change response headers). It unwraps for http.ResponseController, so
// flushing and hijacking (WebSocket upgrades) reach the real writer.
type Writer struct {
	http.ResponseWriter
	Status  int
	Written int64
	before  []func(status int, h http.Header)
	sent    bool

	// Spelling, when set, re-keys the header to the names as the app spelled
	// them, just before it is written and after the BeforeHeader hooks (a
	// field, not a hook: set for every request, it would cost a closure).
	Spelling interface{ Restore(http.Header) }
}

// NewWriter wraps w.
func NewWriter(w http.ResponseWriter) *Writer { return &Writer{ResponseWriter: w} }

// BeforeHeader registers fn to run once, just before the header is written.
func (w *Writer) BeforeHeader(fn func(status int, h http.Header)) { w.before = append(w.before, fn) }

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
	w.Status = status
	for _, fn := range w.before {
		fn(status, w.ResponseWriter.Header())
	}
	if w.Spelling != nil {
		w.Spelling.Restore(w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *Writer) Write(b []byte) (int, error) {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.Written += int64(n)
	return n, err
}

// Unwrap is for http.ResponseController.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes a flush on; ReverseProxy flushes streamed responses.
func (w *Writer) Flush() {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}
