package httpproxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The forwarder passes on what ReverseProxy would: no hop-by-hop headers
// either way, the client's own forwarding headers, no user agent of its
// own; the request's headers stay readable by their canonical names for
// the access log, however the client spelled them.
func TestForwardHeaders(t *testing.T) {
	l := newLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-From-App", "yes")
		fmt.Fprintf(w, "drop=%q keepalive=%q te=%q xff=%q ua=%v id=%q host=%s",
			r.Header.Get("X-Drop"), r.Header.Get("Keep-Alive"), r.Header.Get("Te"),
			r.Header.Get("X-Forwarded-For"), r.Header["User-Agent"], r.Header.Get("X-Request-Id"), r.Host)
	}))
	c, br := l.conn(t)
	resp, body := roundTrip(t, c, br, "GET", "GET /h HTTP/1.1\r\nHost: app\r\n"+
		"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 300\r\nTe: trailers\r\n"+
		"X-Forwarded-For: 192.0.2.7\r\nx-request-id: abc\r\n\r\n")
	want := `drop="" keepalive="" te="trailers" xff="192.0.2.7" ua=[] id="abc" host=app`
	if body != want {
		t.Errorf("the app saw %s\nwant         %s", body, want)
	}
	if resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("X-From-App") != "yes" {
		t.Errorf("response header %v: want X-From-App and not the app's Keep-Alive", resp.Header)
	}
	select {
	case line := <-l.access:
		if !strings.Contains(line, `"request_id":"abc"`) {
			t.Errorf("access log line without the client's request id: %s", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no access log line")
	}
}

// An app's 103 Early Hints reach the client, and the final response still
// has the headers the agent set before them (X-Request-Id).
func TestForwardInformational(t *testing.T) {
	l := newLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	}))
	c, br := l.conn(t)
	hints, _ := roundTrip(t, c, br, "GET", "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
	if hints.StatusCode != http.StatusEarlyHints || hints.Header.Get("Link") == "" {
		t.Fatalf("first response %d %v; want 103 with a Link", hints.StatusCode, hints.Header)
	}
	final, body := roundTrip(t, c, br, "GET", "")
	if final.StatusCode != 200 || body != "final" || final.Header.Get("X-Request-Id") == "" {
		t.Errorf("final response %d %q %v; want 200 \"final\" with X-Request-Id", final.StatusCode, body, final.Header)
	}
}

// A body of unknown length reaches the client as the app sends it, not
// when it ends.
func TestForwardStreams(t *testing.T) {
	release := make(chan struct{})
	l := newLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: second\n\n")
	}))
	defer close(release)
	c, br := l.conn(t)
	io.WriteString(c, "GET /events HTTP/1.1\r\nHost: app\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "data: first\n\n" {
		t.Errorf("first event %q, %v: want it before the app ends the response", buf, err)
	}
}
