package httpproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
	"github.com/veneermesh/veneer/pkg/datapath/proxy"
	"github.com/veneermesh/veneer/pkg/decor"
	_ "github.com/veneermesh/veneer/pkg/decor/all" // every decoration's module
	"github.com/veneermesh/veneer/pkg/mesh/identity"
)

// logLines is an access log the test reads line by line.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // a test that does not read them
	}
	return len(p), nil
}

// loopServer is a Server with the default decorations in front of app,
// behind a proxy on an event loop of its own (the agent's data path, with
// the app as every connection's original destination), and a way to open
// client connections to it.
type loopServer struct {
	s      *Server
	app    netip.AddrPort
	access logLines
	proxy  netip.AddrPort // the proxy's listener
}

func newLoopServer(t testing.TB, app http.Handler, options ...func(*Options)) *loopServer {
	t.Helper()
	a := httptest.NewServer(app)
	t.Cleanup(a.Close)
	access := make(logLines, 100)
	o := Options{Access: access}
	for _, f := range options {
		f(&o)
	}
	s := serving(t, o, "default: {protocol: http, http: {requestId: true}}")
	appAddr := netip.MustParseAddrPort(a.Listener.Addr().String())
	return &loopServer{s: s, app: appAddr, access: access, proxy: onLoop(t, s, appAddr)}
}

// serving is a Server with the config text applied, serving net/http's
// side until the test ends (onLoop's cleanup shuts it down).
func serving(t testing.TB, o Options, text string) *Server {
	t.Helper()
	s, err := New(zerolog.Nop(), o, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(text), decor.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	return s
}

// onLoop puts a proxy on an event loop of its own in front of s, with app
// as the original destination of every connection (the agent's data path),
// and returns its address. Cleanup drains both.
func onLoop(t testing.TB, s *Server, app netip.AddrPort) netip.AddrPort {
	t.Helper()
	return onLoopWith(t, s, app, &proxy.Policy{Protocol: proxy.ProtoHTTP}, nil)
}

// onLoopWith is onLoop with every port's policy pol, and the proxy's
// identity id for mTLS (nil: none).
func onLoopWith(t testing.TB, s *Server, app netip.AddrPort, pol *proxy.Policy, id *identity.Source) netip.AddrPort {
	t.Helper()
	p, err := proxy.New(proxy.Config{
		HTTP:        s,
		Identity:    id,
		OriginalDst: func(int, bool, uint16) (netip.AddrPort, error) { return app, nil },
		IsProbe:     func(netip.AddrPort) bool { return false },
	}, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.SetPolicies(&proxy.Policies{Default: pol})
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.StopAccepting()
		s.Shutdown(ctx)
		p.Shutdown(ctx)
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// conn opens a client connection through the proxy, with a deadline. It
// is closed with a reset at the end of the test, which leaves no TIME_WAIT
// behind (the fuzzer opens thousands).
func (l *loopServer) conn(t testing.TB) (net.Conn, *bufio.Reader) { return dialProxy(t, l.proxy) }

// dialProxy is conn for a proxy at addr.
func dialProxy(t testing.TB, addr netip.AddrPort) (net.Conn, *bufio.Reader) {
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.SetLinger(0); c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// roundTrip writes raw and reads one response to a request of method.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, method, raw string) (*http.Response, string) {
	t.Helper()
	if raw != "" {
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the response to %q: %v", raw, err)
	}
	return resp, string(body)
}

// closed reports whether the server closed c (nothing more to read).
func closed(br *bufio.Reader) bool {
	_, err := br.ReadByte()
	return err == io.EOF
}

func testApp() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream": // unknown length: chunked to the agent
			io.WriteString(w, "one,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "two")
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/cached":
			w.WriteHeader(http.StatusNotModified)
		case "/ignore-body": // answers without reading the request body
			io.WriteString(w, "ignored")
		default:
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(b))
		}
	})
}

// The loop frames responses as net/http's server does, and keeps the
// connection when, and only when, it may.
func TestLoopFramingAndKeepAlive(t *testing.T) {
	l := newLoopServer(t, testApp())
	c, br := l.conn(t)
	get := func(path string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: app\r\n\r\n"
	}

	resp, body := roundTrip(t, c, br, "GET", get("/a"))
	if resp.StatusCode != 200 || body != "GET /a 0" || resp.ContentLength != int64(len(body)) {
		t.Errorf("GET /a: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
	}
	if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("Date") == "" {
		t.Errorf("GET /a: header %v lacks X-Request-Id or Date", resp.Header)
	}
	resp, body = roundTrip(t, c, br, "GET", get("/stream"))
	if body != "one,two" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("GET /stream: %q, transfer encoding %v; want chunked", body, resp.TransferEncoding)
	}
	resp, body = roundTrip(t, c, br, "GET", get("/trailer"))
	if body != "body" || resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("GET /trailer: %q, trailer %v; want X-Sum: 42", body, resp.Trailer)
	}
	resp, body = roundTrip(t, c, br, "HEAD", "HEAD /a HTTP/1.1\r\nHost: app\r\n\r\n")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len("HEAD /a 0")) {
		t.Errorf("HEAD /a: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
	}
	for _, path := range []string{"/empty", "/cached"} {
		if resp, body = roundTrip(t, c, br, "GET", get(path)); body != "" || resp.StatusCode/100 != 2 && resp.StatusCode != 304 {
			t.Errorf("GET %s: %d %q; want no body", path, resp.StatusCode, body)
		}
	}
	// Pipelined: two requests in one write, answered in order.
	io.WriteString(c, get("/p1")+get("/p2"))
	for _, want := range []string{"GET /p1 0", "GET /p2 0"} {
		if _, body = roundTrip(t, c, br, "GET", ""); body != want {
			t.Errorf("pipelined: %q; want %q", body, want)
		}
	}
	// A body the app did not read is read off: the connection stays.
	resp, body = roundTrip(t, c, br, "POST", "POST /ignore-body HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello")
	if body != "ignored" {
		t.Errorf("POST /ignore-body: %q", body)
	}
	if _, body = roundTrip(t, c, br, "GET", get("/after")); body != "GET /after 0" {
		t.Errorf("after an unread body: %q", body)
	}
	// The agent's own answer, of a length it knows only at the end, has a
	// Content-Length; Connection: close ends the connection after it.
	resp, body = roundTrip(t, c, br, "GET", "GET /"+strings.Repeat("a", http1.DefaultLimits.Target)+" HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusRequestURITooLong || resp.ContentLength != int64(len(body)) || !resp.Close {
		t.Errorf("long URI: %d, length %d of %d, close %v", resp.StatusCode, resp.ContentLength, len(body), resp.Close)
	}
	if !closed(br) {
		t.Error("the connection stayed open after Connection: close")
	}
}

func TestLoopHTTP10(t *testing.T) {
	l := newLoopServer(t, testApp())
	c, br := l.conn(t)
	resp, body := roundTrip(t, c, br, "GET", "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if body != "GET /k 0" || resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("HTTP/1.0 keep-alive: %q, Connection %q", body, resp.Header.Get("Connection"))
	}
	// Unknown length: HTTP/1.0 has no chunks, so the body ends with the
	// connection.
	if _, body = roundTrip(t, c, br, "GET", "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"); body != "one,two" {
		t.Errorf("HTTP/1.0 stream: %q", body)
	}
	if !closed(br) {
		t.Error("the connection stayed open after a close-delimited body")
	}
	c, br = l.conn(t)
	if _, body = roundTrip(t, c, br, "GET", "GET /plain HTTP/1.0\r\n\r\n"); body != "GET /plain 0" {
		t.Errorf("HTTP/1.0: %q", body)
	}
	if !closed(br) {
		t.Error("an HTTP/1.0 connection without keep-alive stayed open")
	}
}

// A malformed head gets 400 from the loop, an HTTP/1.1 request without
// Host too; Expect: 100-continue is answered by the agent once.
func TestLoopMalformedHeadsAndExpect(t *testing.T) {
	l := newLoopServer(t, testApp())
	for _, raw := range []string{
		"GET / HTTP/1.1\r\n\r\n",                           // no Host
		"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", // a space in a name
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",              // a malformed Host
		"GET /\r\nHost: app\r\n\r\n",                       // no version
	} {
		c, br := l.conn(t)
		if resp, _ := roundTrip(t, c, br, "GET", raw); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %d; want 400", raw, resp.StatusCode)
		}
	}
	c, br := l.conn(t)
	io.WriteString(c, "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := roundTrip(t, c, br, "POST", ""); resp.StatusCode != http.StatusContinue {
		t.Fatalf("Expect: 100-continue: %d; want 100", resp.StatusCode)
	}
	// One 100 Continue: the app was not asked for its own.
	if resp, body := roundTrip(t, c, br, "POST", "abc"); resp.StatusCode != 200 || body != "POST /e 3" {
		t.Errorf("after 100 Continue: %d %q", resp.StatusCode, body)
	}
}

// A client that leaves while the app is slow cancels the app's request,
// and the access log says 499 DC (downstream connection termination), as
// Envoy's does.
func TestLoopClientGone(t *testing.T) {
	cancelled, arrived := make(chan struct{}), make(chan struct{})
	l := newLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	}))
	c, _ := l.conn(t)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: app\r\n\r\n")
	select {
	case <-arrived: // the request is in the app
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the app")
	}
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the app's request was not cancelled within 5s of the client leaving")
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case line := <-l.access:
			if strings.Contains(line, `"status":499,"response_flags":"DC"`) {
				return
			}
			t.Logf("access log: %s", line)
		case <-timeout:
			t.Fatal("no access log line with 499 DC within 5s")
		}
	}
}

// An app whose body breaks off mid-response: ReverseProxy aborts the
// handler (a panic with http.ErrAbortHandler); the loop ends that
// connection, so the client sees a cut body and not a hang, and the next
// connection is served.
func TestLoopAbortedResponse(t *testing.T) {
	l := newLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cut" {
			io.WriteString(w, "whole")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
		brw.Flush()
		c.Close()
	}))
	c, br := l.conn(t)
	io.WriteString(c, "GET /cut HTTP/1.1\r\nHost: app\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("a cut body read whole: %q", b)
	}
	c, br = l.conn(t)
	if _, body := roundTrip(t, c, br, "GET", "GET / HTTP/1.1\r\nHost: app\r\n\r\n"); body != "whole" {
		t.Errorf("the next connection: %q", body)
	}
}

// A client that connects and sends nothing is cut off by the header
// timeout, as net/http's server does, not kept for the idle timeout.
func TestLoopSilentClient(t *testing.T) {
	l := newLoopServer(t, testApp(), func(o *Options) { o.HeaderTimeout = 200 * time.Millisecond })
	c, br := l.conn(t)
	if !closed(br) { // within the 10s deadline conn sets
		t.Fatal("a silent client was not disconnected")
	}
	c.Close()
	// After a request, the wait for the next is the idle timeout (5 min by
	// default), not the header timeout.
	c, br = l.conn(t)
	roundTrip(t, c, br, "GET", "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := br.ReadByte(); err == io.EOF {
		t.Error("a keep-alive connection was closed by the header timeout while idle")
	}
}
