package sniff

import (
	"net"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Verdict
	}{
		{"", NeedMore},
		{"G", NeedMore},
		{"GE", NeedMore},
		{"GET", NeedMore},
		{"GET /", IsHTTP1},
		{"POST /upload HTTP/1.1\r\n", IsHTTP1},
		{"DELETE /x HTTP/1.0\r\n", IsHTTP1},
		{"P", NeedMore}, // POST, PUT, PATCH or the h2 preface
		{"PRI * HTTP/2.0\r\n", NeedMore},
		{Preface, IsHTTP2},
		{Preface + "\x00\x00\x12\x04", IsHTTP2},
		{"PRI * HTTP/1.1\r\n", NotHTTP},
		{"get / HTTP/1.1\r\n", NotHTTP}, // methods are case-sensitive
		{"GETX / HTTP/1.1", NotHTTP},
		{"\x16\x03\x01\x02\x00", NotHTTP}, // a TLS ClientHello
		{"*3\r\n$3\r\nSET\r\n", NotHTTP},  // Redis
		{"\x00\x00\x00\x08\x04\xd2\x16\x2f", NotHTTP},
	} {
		if got := Classify([]byte(tc.in)); got != tc.want {
			t.Errorf("Classify(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name           string
		client, app    string // what each side sends first; "" is silence
		clientDelay    time.Duration
		want           Proto
		wantFromApp    string
		wantFromClient string
	}{
		{name: "http/1 request", client: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", want: HTTP1, wantFromClient: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "h2c preface", client: Preface, want: HTTP2, wantFromClient: Preface},
		{name: "server first (MySQL-like greeting)", app: "\x4a\x00\x00\x00\x0a8.0.36\x00", want: TCP, wantFromApp: "\x4a\x00\x00\x00\x0a8.0.36\x00"},
		{name: "client first, not http", client: "*1\r\n$4\r\nPING\r\n", want: TCP, wantFromClient: "*1\r\n$4\r\nPING\r\n"},
		{name: "nobody speaks", want: TCP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clientSide, proxyClient := pair(t)
			proxyApp, appSide := pair(t)
			if tc.client != "" {
				clientSide.Write([]byte(tc.client))
			}
			if tc.app != "" {
				appSide.Write([]byte(tc.app))
			}
			// A long timeout: a server-first or decisive exchange must not wait for it.
			timeout := 10 * time.Second
			if tc.client == "" && tc.app == "" {
				timeout = 50 * time.Millisecond
			}
			done := make(chan Result, 1)
			go func() { done <- Sniff(proxyClient, proxyApp, timeout, nil) }()
			var r Result
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Sniff stalled on a connection that had already decided")
			}
			if r.Proto != tc.want || string(r.FromApp) != tc.wantFromApp || string(r.FromClient) != tc.wantFromClient {
				t.Errorf("Sniff = %v, from client %q, from app %q; want %v, %q, %q",
					r.Proto, r.FromClient, r.FromApp, tc.want, tc.wantFromClient, tc.wantFromApp)
			}
			// The conns are usable afterwards, without deadlines.
			appSide.Write([]byte("x"))
			proxyApp.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := proxyApp.Read(make([]byte, 1)); err != nil {
				t.Errorf("reading the app after Sniff: %v", err)
			}
		})
	}
}

func TestEarly(t *testing.T) {
	clientSide, proxyClient := pair(t)
	clientSide.Write([]byte("GET / HTTP/1.1\r\n"))
	got, p, decided := Early(proxyClient, time.Second)
	if !decided || p != HTTP1 || string(got) != "GET / HTTP/1.1\r\n" {
		t.Errorf("Early on an HTTP client = %q, %v, %v", got, p, decided)
	}
	// A silent client (a server-first protocol): undecided after the wait,
	// and Sniff goes on from what was read.
	clientSide2, proxyClient2 := pair(t)
	clientSide2.Write([]byte("GE"))
	got, _, decided = Early(proxyClient2, 20*time.Millisecond)
	if decided || string(got) != "GE" {
		t.Errorf("Early on a slow client = %q, decided %v; want GE, undecided", got, decided)
	}
	proxyApp, _ := pair(t)
	clientSide2.Write([]byte("T / HTTP/1.1\r\n"))
	r := Sniff(proxyClient2, proxyApp, time.Second, got)
	if r.Proto != HTTP1 || string(r.FromClient) != "GET / HTTP/1.1\r\n" {
		t.Errorf("Sniff after Early = %v %q", r.Proto, r.FromClient)
	}
}
