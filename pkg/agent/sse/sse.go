// Package sse writes Server-Sent Events, the stream the admin page's live
// charts and tap read with the browser's EventSource.
//
//	s := sse.Start(w)
//	err := s.Send("metrics", snapshot) // event: metrics, data: its JSON
package sse

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Stream is one client's event stream.
type Stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// Start sends the head of an event stream.
func Start(w http.ResponseWriter) *Stream {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	s := &Stream{w: w, rc: http.NewResponseController(w)}
	s.rc.Flush()
	return s
}

// Send writes one event named name with v's JSON as its data, and flushes
// it; an error means the client is gone.
func (s *Stream) Send(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return err
	}
	return s.rc.Flush()
}
