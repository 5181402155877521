package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Every HTTP/1 request is served on the loop, whatever its target's form:
// these are the ones that used to go to net/http.

// targetApp says what request line and Host it saw.
func targetApp() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s host=%s", r.Method, r.RequestURI, r.Host)
	})
}

// A URL as the target (a proxy's request) reaches the app as its path and
// query, with the URL's host as Host (RFC 9112 §3.2.2); * reaches it as *.
// The connection goes on after each.
func TestAbsoluteAndAsteriskTargets(t *testing.T) {
	l := newLoopServer(t, targetApp())
	c, br := l.conn(t)
	for _, tc := range []struct{ method, raw, want string }{
		{"GET", "GET http://svc.test:8080/p/a%20b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", "GET /p/a%20b?q=1 host=svc.test:8080"},
		{"GET", "GET HTTP://svc.test HTTP/1.1\r\nHost: svc.test\r\n\r\n", "GET / host=svc.test"},
		{"GET", "GET https://svc.test?x HTTP/1.1\r\nHost: svc.test\r\n\r\n", "GET /?x host=svc.test"},
		// Go's server answers OPTIONS * itself, empty, without its handler:
		// an empty 200 is the app having read "*".
		{"OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: svc.test\r\n\r\n", ""},
		{"GET", "GET /plain HTTP/1.1\r\nHost: svc.test\r\n\r\n", "GET /plain host=svc.test"},
	} {
		resp, body := roundTrip(t, c, br, tc.method, tc.raw)
		if resp.StatusCode != 200 || body != tc.want {
			t.Errorf("%q: %d %q; want 200 %q", tc.raw, resp.StatusCode, body, tc.want)
		}
	}
	if n := l.s.sessions(); n != 1 {
		t.Errorf("%d sessions on the loop; want the one connection, still there", n)
	}
	select {
	case line := <-l.access:
		if !strings.Contains(line, `"path":"/p/a%20b?q=1"`) || !strings.Contains(line, `"authority":"svc.test:8080"`) {
			t.Errorf("access log line %s; want the URL's path and host", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no access log line")
	}
}

// Targets the agent refuses get 400 with the reason, and the app is never
// asked; an Expect it cannot meet gets 417 and the connection closes.
func TestRefusedTargetsAndExpectations(t *testing.T) {
	l := newLoopServer(t, targetApp())
	for _, tc := range []struct {
		raw    string
		status int
		why    string
	}{
		{"GET ftp://svc.test/ HTTP/1.1\r\nHost: svc.test\r\n\r\n", 400, "scheme other than http"},
		{"GET http://user@svc.test/ HTTP/1.1\r\nHost: svc.test\r\n\r\n", 400, "user information"},
		{"GET http:/p HTTP/1.1\r\nHost: svc.test\r\n\r\n", 400, "has no host"},
		{"CONNECT /p HTTP/1.1\r\nHost: svc.test\r\n\r\n", 400, "not a host and a port"},
		{"CONNECT svc.test HTTP/1.1\r\nHost: svc.test\r\n\r\n", 400, "not a host and a port"},
		{"CONNECT svc.test:443 HTTP/1.1\r\nHost: svc.test\r\nContent-Length: 2\r\n\r\nab", 400, "with a body"},
		{"POST / HTTP/1.1\r\nHost: svc.test\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n", 417, "Expect is not 100-continue"},
	} {
		c, br := l.conn(t)
		resp, body := roundTrip(t, c, br, "GET", tc.raw)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.why) {
			t.Errorf("%q: %d %q; want %d saying %q", tc.raw, resp.StatusCode, body, tc.status, tc.why)
		}
		if strings.Contains(body, "host=") {
			t.Errorf("%q reached the app", tc.raw)
		}
		if !closed(br) {
			t.Errorf("%q: the connection stayed open", tc.raw)
		}
	}
}

// connectApp is a forward proxy: CONNECT to allowed.test:443 gets 200 and
// then an echo in capitals until the client's end, "bye" and its close;
// any other CONNECT gets 403 with a body; other requests a plain answer.
func connectApp(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "CONNECT" {
			io.WriteString(w, "plain")
			return
		}
		if r.Host != "allowed.test:443" {
			http.Error(w, "not there", http.StatusForbidden)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 200 Connection established\r\nContent-Length: 99\r\n\r\n")
		brw.Flush()
		shout(c, brw)
	})
}

// CONNECT goes to the app, a proxy: its 2xx makes the connection a tunnel
// on the loop (the head without the framing it must not have, the bytes
// after it both ways, half-closes passed on, one access log line for the
// tunnel's life); a refusal is an ordinary response, and the connection
// goes on.
func TestConnectOnTheLoop(t *testing.T) {
	l := newLoopServer(t, connectApp(t))
	c, br := l.conn(t)
	resp, body := roundTrip(t, c, br, "CONNECT", "CONNECT denied.test:443 HTTP/1.1\r\nHost: denied.test:443\r\n\r\n")
	if resp.StatusCode != 403 || !strings.Contains(body, "not there") {
		t.Fatalf("refused CONNECT: %d %q; want the app's 403", resp.StatusCode, body)
	}
	<-l.access
	io.WriteString(c, "CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\nfirst ")
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != "" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("CONNECT: %d %v; want 200 without Content-Length, with the agent's X-Request-Id", resp.StatusCode, resp.Header)
	}
	if n := l.s.sessions(); n != 1 {
		t.Errorf("%d sessions on the loop during the tunnel; want 1", n)
	}
	io.WriteString(c, "second")
	want := "FIRST SECOND"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("through the tunnel: %q, %v; want %q", got, err, want)
	}
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "bye" {
		t.Fatalf("after the client's half-close: %q, %v; want \"bye\"", rest, err)
	}
	select {
	case line := <-l.access:
		for _, f := range []string{`"method":"CONNECT"`, `"status":200`, `"bytes_received":12,`, `"bytes_sent":15,`} {
			if !strings.Contains(line, f) {
				t.Errorf("access log line %s; want the tunnel's, with %s", line, f)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no access log line after the tunnel closed")
	}
}

// HTTP/2 with prior knowledge (h2c) is the one thing that leaves the loop:
// net/http's HTTP/2 server serves it through the same chain, to the app
// over h2c, and the connection is counted once.
func TestH2CHandedToNetHTTP(t *testing.T) {
	h2 := new(http.Protocols)
	h2.SetHTTP1(true)
	h2.SetUnencryptedHTTP2(true)
	a := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s id=%t", r.Proto, r.URL.Path, r.Header.Get("X-Request-Id") != "")
	}))
	a.Config.Protocols = h2
	a.Start()
	t.Cleanup(a.Close)
	access := make(logLines, 10)
	s := serving(t, Options{Access: access}, "default: {protocol: http, http: {requestId: true}}")
	addr := onLoop(t, s, netip.MustParseAddrPort(a.Listener.Addr().String()))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: onlyH2C()}}
	defer client.CloseIdleConnections()
	for range 2 {
		resp, err := client.Get("http://" + addr.String() + "/two")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(body) != "HTTP/2.0 /two id=true" {
			t.Fatalf("h2c: %s %q; want HTTP/2 both sides, through the chain", resp.Proto, body)
		}
	}
	select {
	case line := <-access:
		if !strings.Contains(line, `"protocol":"HTTP/2.0"`) {
			t.Errorf("access log line %s; want HTTP/2.0", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no access log line")
	}
	if n := s.sessions(); n != 0 {
		t.Errorf("%d sessions on the loop; want the connection handed off", n)
	}
	// HTTP/1 never reaches net/http's server: it serves HTTP/2 alone.
	cli, srv := net.Pipe()
	defer cli.Close()
	go s.ln.push(srv)
	cli.SetDeadline(time.Now().Add(5 * time.Second))
	go io.WriteString(cli, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if line, _ := bufio.NewReader(cli).ReadString('\n'); strings.HasPrefix(line, "HTTP/1") {
		t.Errorf("net/http's server answered HTTP/1: %q", line)
	}
}

func onlyH2C() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}
