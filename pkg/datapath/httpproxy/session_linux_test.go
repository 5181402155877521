package httpproxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/proxy"
)

// tcpApp is an app on a loopback port that serves each connection with
// serve, on a goroutine of its own, until the test ends.
func tcpApp(t *testing.T, serve func(c net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// closingApp answers one request per connection, then closes the
// connection after idle, as an app with a short keep-alive timeout does.
func closingApp(t *testing.T, idle time.Duration) netip.AddrPort {
	t.Helper()
	return tcpApp(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(idle)
	})
}

// pooled counts the loops' idle connections to dst.
func (s *Server) pooled(dst netip.AddrPort) int {
	n := 0
	s.eachLoop(func(ls *loopState) { n += len(ls.idle[appKey{dst: dst}]) })
	return n
}

// An app closing an idle pooled connection is seen at once (its RDHUP),
// and the next request goes on a fresh connection: no 503 for a close the
// agent could have known about, and nothing left in the pool.
func TestPooledConnectionClosedByTheApp(t *testing.T) {
	app := closingApp(t, 50*time.Millisecond)
	s := serving(t, Options{Access: io.Discard}, "default: {protocol: http}")
	addr := onLoop(t, s, app)
	c, br := dialProxy(t, addr)
	for i := range 3 {
		resp, body := roundTrip(t, c, br, "GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q; want 200 ok", i, resp.StatusCode, body)
		}
		if n := s.pooled(app); n != 1 {
			t.Errorf("after request %d: %d pooled connections; want the one that served it", i, n)
		}
		deadline := time.Now().Add(5 * time.Second)
		for s.pooled(app) != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := s.pooled(app); n != 0 {
			t.Fatalf("the app closed its idle connection; the pool still holds %d", n)
		}
	}
}

// racingApp answers the first request of each connection and closes the
// connection, unanswered, on the second: as an app whose keep-alive
// timeout fires just as a request arrives. It counts the requests it read.
func racingApp(t *testing.T, read *atomic.Int64) netip.AddrPort {
	t.Helper()
	return tcpApp(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			read.Add(1)
			if i == 1 {
				return // closed under the request
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
}

// A pooled connection the app closes under a request (no byte of an answer)
// is not the app failing: a request that may be sent twice goes again on a
// fresh connection, and the client never sees a 503. One that may not (a
// POST: the app may have acted on it) is answered 503.
func TestPooledConnectionClosedUnderARequest(t *testing.T) {
	for _, tc := range []struct {
		method     string
		status     int
		appReadsIt int64
	}{
		{"GET", 200, 3}, // the second twice: on the connection the app closed, then on a fresh one
		{"DELETE", 200, 3},
		{"POST", 503, 2},
	} {
		t.Run(tc.method, func(t *testing.T) {
			var read atomic.Int64
			app := racingApp(t, &read)
			s := serving(t, Options{Access: io.Discard}, "default: {protocol: http}")
			addr := onLoop(t, s, app)
			c, br := dialProxy(t, addr)
			req := tc.method + " / HTTP/1.1\r\nHost: a\r\n\r\n"
			if resp, body := roundTrip(t, c, br, tc.method, req); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("first request: %d %q; want 200 ok", resp.StatusCode, body)
			}
			if resp, _ := roundTrip(t, c, br, tc.method, req); resp.StatusCode != tc.status {
				t.Errorf("second request, its pooled connection closed under it: %d; want %d", resp.StatusCode, tc.status)
			}
			if n := read.Load(); n != tc.appReadsIt {
				t.Errorf("the app read %d requests; want %d", n, tc.appReadsIt)
			}
		})
	}
}

// HTTP on a port with the PROXY protocol is served on the loop: each
// client connection gets connections to the app of its own, each starting
// with that client's header, kept for its next requests and never given to
// another client (issue 28).
func TestProxyProtocolConnectionsAreTheClients(t *testing.T) {
	headers := make(chan string, 8)
	app := tcpApp(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		headers <- line
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	s := serving(t, Options{Access: io.Discard}, "default: {protocol: http}")
	addr := onLoopWith(t, s, app, &proxy.Policy{Protocol: proxy.ProtoHTTP, ProxyProtocol: 1}, nil)
	for client := range 2 {
		c, br := dialProxy(t, addr)
		for i := range 3 {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("client %d, request %d: %v, %v", client, i, resp, err)
			}
			io.Copy(io.Discard, resp.Body)
		}
		local := c.LocalAddr().(*net.TCPAddr).AddrPort()
		want := "PROXY TCP4 127.0.0.1 " + app.Addr().String() + " " + itoa(int(local.Port())) + " " + itoa(int(app.Port())) + "\r\n"
		select {
		case got := <-headers:
			if got != want {
				t.Errorf("client %d: the app's connection began %q; want %q", client, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d: no connection reached the app", client)
		}
	}
	select {
	case got := <-headers:
		t.Errorf("a third connection reached the app (%q); want one per client, kept for its requests", got)
	case <-time.After(100 * time.Millisecond):
	}
}
