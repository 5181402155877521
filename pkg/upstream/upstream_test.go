package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// app is a loopback HTTP server that counts the connections it accepted.
type app struct {
	*httptest.Server
	conns  atomic.Int64
	closed chan struct{} // a value for every connection closed
}

func newApp(t *testing.T, h http.HandlerFunc, configure ...func(*http.Server)) *app {
	a := &app{closed: make(chan struct{}, 100)}
	a.Server = httptest.NewUnstartedServer(h)
	a.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			a.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			select {
			case a.closed <- struct{}{}:
			default:
			}
		}
	}
	for _, c := range configure {
		c(a.Config)
	}
	a.Start()
	t.Cleanup(a.Close)
	return a
}

// countingFallback records the requests passed on to it.
type countingFallback struct{ n atomic.Int64 }

func (f *countingFallback) RoundTrip(req *http.Request) (*http.Response, error) {
	f.n.Add(1)
	return http.DefaultTransport.RoundTrip(req)
}

func newTransport(idle time.Duration) (*Transport, *countingFallback) {
	fb := &countingFallback{}
	return New(new(net.Dialer).DialContext, idle, fb), fb
}

func get(t *testing.T, tr http.RoundTripper, req *http.Request) (int, string) {
	t.Helper()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp.StatusCode, string(b)
}

func request(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestKeepAliveAndFraming(t *testing.T) {
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("chunk one,"))
			w.(http.Flusher).Flush()
			w.Write([]byte("chunk two"))
		case "/echo":
			fmt.Fprintf(w, "%s %d %s", r.Method, len(b), r.Header.Get("X-Name"))
		default:
			w.Write([]byte("hello"))
		}
	})
	tr, fb := newTransport(time.Minute)
	for i, c := range []struct {
		method, path, body, want string
	}{
		{"GET", "/", "", "hello"},
		{"GET", "/chunked", "", "chunk one,chunk two"},
		{"POST", "/echo", strings.Repeat("x", 1000), "POST 1000 v"},
		{"HEAD", "/", "", ""},
		{"PUT", "/echo", strings.Repeat("y", maxBody), fmt.Sprintf("PUT %d v", maxBody)},
	} {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req := request(t, c.method, a.URL+c.path, body)
		req.Header.Set("X-Name", "v")
		if code, got := get(t, tr, req); code != 200 || got != c.want {
			t.Errorf("%d: %s %s: got %d %q; want 200 %q", i, c.method, c.path, code, got, c.want)
		}
	}
	if n := a.conns.Load(); n != 1 {
		t.Errorf("the app accepted %d connections; want 1, reused", n)
	}
	if n := fb.n.Load(); n != 0 {
		t.Errorf("%d requests passed to the fallback; want 0", n)
	}
}

func TestFallback(t *testing.T) {
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	tr, fb := newTransport(time.Minute)
	big := request(t, "POST", a.URL, strings.NewReader(strings.Repeat("z", maxBody+1)))
	unknown := request(t, "POST", a.URL, io.MultiReader(strings.NewReader("abc")))
	unknown.ContentLength = -1
	upgrade := request(t, "GET", a.URL, nil)
	upgrade.Header["upgrade"] = []string{"websocket"} // respelled, as rawhead leaves it
	trailer := request(t, "POST", a.URL, strings.NewReader("abc"))
	trailer.Trailer = http.Header{"X-Sum": nil}
	// GotConn sees the connection of every request, passed on or not.
	var hooked atomic.Int64
	tr.GotConn = func(_ *http.Request, c net.Conn) {
		if c != nil && c.RemoteAddr().String() == a.Listener.Addr().String() {
			hooked.Add(1)
		}
	}
	for i, req := range []*http.Request{big, unknown, upgrade, trailer} {
		get(t, tr, req)
		if got := fb.n.Load(); got != int64(i+1) {
			t.Fatalf("request %d: %d passed to the fallback; want %d", i, got, i+1)
		}
	}
	get(t, tr, request(t, "GET", a.URL, nil)) // one of its own
	if n := hooked.Load(); n != 5 {
		t.Errorf("GotConn called with the app's connection %d times; want 5", n)
	}
}

func TestReuseAfterTheAppClosed(t *testing.T) {
	// The app closes every connection after its response, without saying
	// so: the pooled connection is dead when it is next taken.
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		w.Write([]byte("ok"))
		w.(http.Flusher).Flush()
		c, _, _ := http.NewResponseController(w).Hijack()
		c.Close()
	})
	tr, _ := newTransport(time.Minute)
	for i, c := range []struct {
		method string
		wait   time.Duration
	}{
		// Taken before the app's FIN arrived: sent again, as it may be.
		{"GET", 0}, {"GET", 0}, {"PUT", 0},
		// Found closed when taken: any method goes on a new connection.
		{"POST", 10 * time.Millisecond}, {"POST", 10 * time.Millisecond}, {"GET", 10 * time.Millisecond},
	} {
		time.Sleep(c.wait)
		if code, got := get(t, tr, request(t, c.method, a.URL, nil)); code != 200 || got != "ok" {
			t.Fatalf("%d: %s: got %d %q; want 200 ok", i, c.method, code, got)
		}
	}
}

func TestEarlyCloseIsNotReused(t *testing.T) {
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 1<<20)) })
	tr, _ := newTransport(time.Minute)
	resp, err := tr.RoundTrip(request(t, "GET", a.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 10))
	resp.Body.Close() // most of the body unread: the connection cannot carry another response
	get(t, tr, request(t, "GET", a.URL, nil))
	if n := a.conns.Load(); n != 2 {
		t.Errorf("the app accepted %d connections; want 2", n)
	}
}

func TestConnectionCloseIsNotReused(t *testing.T) {
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Write([]byte("bye"))
	})
	tr, _ := newTransport(time.Minute)
	get(t, tr, request(t, "GET", a.URL, nil))
	get(t, tr, request(t, "GET", a.URL, nil))
	if n := a.conns.Load(); n != 2 {
		t.Errorf("the app accepted %d connections; want 2", n)
	}
}

func TestCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		w.Write([]byte("ok"))
	})
	tr, _ := newTransport(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := tr.RoundTrip(request(t, "GET", a.URL+"/slow", nil).WithContext(ctx))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a request whose context ended: got %v; want %v", err, context.DeadlineExceeded)
	}
	if code, got := get(t, tr, request(t, "GET", a.URL, nil)); code != 200 || got != "ok" {
		t.Errorf("after a cancelled request: got %d %q; want 200 ok", code, got)
	}
	if n := a.conns.Load(); n != 2 {
		t.Errorf("the app accepted %d connections; want 2: the cancelled one is not reused", n)
	}
}

func TestInformationalResponses(t *testing.T) {
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Write([]byte("final"))
	})
	tr, _ := newTransport(time.Minute)
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
		got = append(got, code)
		return nil
	}}
	req := request(t, "GET", a.URL, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	if code, body := get(t, tr, req); code != 200 || body != "final" {
		t.Errorf("got %d %q; want 200 final", code, body)
	}
	if len(got) != 1 || got[0] != http.StatusEarlyHints {
		t.Errorf("informational responses passed on: %v; want [103]", got)
	}
}

func TestIdleConnectionsClose(t *testing.T) {
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	tr, _ := newTransport(10 * time.Millisecond)
	get(t, tr, request(t, "GET", a.URL, nil))
	select {
	case <-a.closed:
	case <-time.After(5 * sweepEvery):
		t.Fatalf("the idle connection is still open %v after its idle timeout", 5*sweepEvery)
	}
}

func TestUnsolicitedBytesRetireTheConnection(t *testing.T) {
	// An app that answers and then sends more than it was asked for: the
	// surplus must not be taken for the next request's response.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn, n int) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc%d", n)
					c.Write([]byte("HTTP/1.1 500 Stray\r\nContent-Length: 0\r\n\r\n"))
				}
			}(c, n)
		}
	}()
	tr, _ := newTransport(time.Minute)
	for i := range 2 {
		time.Sleep(20 * time.Millisecond)
		want := fmt.Sprintf("c%d", i)
		if code, got := get(t, tr, request(t, "GET", "http://"+l.Addr().String(), nil)); code != 200 || got != want {
			t.Errorf("request %d: got %d %q; want 200 %q", i, code, got, want)
		}
	}
}

func TestAppClosedConnectionsAreSwept(t *testing.T) {
	// The app closes idle connections after 20ms; the pool would keep
	// them a minute: the sweep notices the app's close.
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) },
		func(s *http.Server) { s.IdleTimeout = 20 * time.Millisecond })
	tr, _ := newTransport(time.Minute)
	get(t, tr, request(t, "GET", a.URL, nil))
	idle := tr.pool(a.Listener.Addr().String()).idleCount
	if n := idle(); n != 1 {
		t.Fatalf("pooled connections after a response: %d; want 1", n)
	}
	for deadline := time.Now().Add(5 * sweepEvery); idle() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a connection the app closed is still pooled %v later", 5*sweepEvery)
		}
	}
}
