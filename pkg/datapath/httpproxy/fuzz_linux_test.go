package httpproxy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FuzzLoop sends arbitrary bytes as a client's whole stream (then a
// half-close) through the HTTP/1 loop and net/http behind it: whatever
// comes back must be HTTP/1 responses, and the connection must end by
// itself (no hang, no crash). Then an ordinary request is still served.
func FuzzLoop(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /trailer HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
		"GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	l := newLoopServer(f, testApp(), func(o *Options) { o.HeaderTimeout = time.Second; o.BodyIdle = time.Second })
	f.Fuzz(func(t *testing.T, in []byte) {
		c, br := l.conn(t)
		defer c.Close()
		c.Write(in)
		c.(interface{ CloseWrite() error }).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		out, err := io.ReadAll(br)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the connection was still open 5s after the client's half-close; got %q", out)
		}
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("reading: %v", err)
		}
		// HTTP/2's preface gets net/http's HTTP/2 frames (or nothing, when
		// the half-close comes first).
		h2 := bytes.HasPrefix(in, []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		if len(out) > 0 && !h2 && !bytes.HasPrefix(out, []byte("HTTP/1.")) {
			t.Fatalf("the answer is not HTTP/1: %q", out)
		}
		c2, br2 := l.conn(t)
		defer c2.Close()
		if _, body := roundTrip(t, c2, br2, "GET", "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.HasPrefix(body, "GET /after") {
			t.Fatalf("an ordinary request after %q: %q", in, body)
		}
	})
}
