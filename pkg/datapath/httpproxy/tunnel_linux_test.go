package httpproxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// upgradeApp takes "Upgrade: shout" on /up: it reads the request's body,
// and its 101 (with the body in X-Body) comes with the first bytes of the
// new protocol ("early"), then it echoes what it reads in capitals until
// the client's end, answers "bye" and closes. On /decline it answers as if
// Upgrade were not there.
func upgradeApp(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/up" {
			io.WriteString(w, "plain")
			return
		}
		if r.Header.Get("Upgrade") != "shout" || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			http.Error(w, "Upgrade or Connection not passed on: "+r.Header.Get("Upgrade")+"/"+r.Header.Get("Connection"), 400)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: shout\r\nConnection: Upgrade\r\nX-App: yes\r\nX-Body: " + string(body) + "\r\n\r\nearly")
		brw.Flush()
		shout(c, brw)
	})
}

// shout echoes what it reads from brw to c in capitals until the client's
// end, then says "bye".
func shout(c net.Conn, brw *bufio.ReadWriter) {
	b := make([]byte, 4096)
	for {
		n, err := brw.Read(b)
		c.Write(bytes.ToUpper(b[:n]))
		if err != nil {
			break
		}
	}
	io.WriteString(c, "bye")
}

// sessions counts the loops' sessions.
func (s *Server) sessions() int {
	n := 0
	s.eachLoop(func(ls *loopState) { n += len(ls.sessions) })
	return n
}

// An Upgrade the app takes becomes a tunnel on the loop: the 101 with the
// protocol's fields, the bytes each side sent with its head, an echo both
// ways, the client's half-close passed on and the app's answer to it read
// after; the access log line comes at the end, with the status 101 and the
// tunnel's bytes.
func TestUpgradeTunnelsOnTheLoop(t *testing.T) {
	l := newLoopServer(t, upgradeApp(t))
	c, br := l.conn(t)
	io.WriteString(c, "GET /up HTTP/1.1\r\nHost: app\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\nfirst ")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "shout" || resp.Header.Get("Connection") != "Upgrade" ||
		resp.Header.Get("X-App") != "yes" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("response %d %v; want 101 with Upgrade, Connection, the app's X-App and the agent's X-Request-Id", resp.StatusCode, resp.Header)
	}
	want := "earlyFIRST "
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("after the 101: %q, %v; want %q", got, err, want)
	}
	if n := l.s.sessions(); n != 1 {
		t.Errorf("%d sessions on the loop during the tunnel; want 1 (not handed to net/http)", n)
	}
	io.WriteString(c, "second")
	got = make([]byte, len("SECOND"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "SECOND" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "bye" {
		t.Fatalf("after the client's half-close: %q, %v; want the app's \"bye\", then its end", rest, err)
	}
	select {
	case line := <-l.access:
		// 12 bytes up ("first second"), 20 down ("earlyFIRST SECONDbye").
		for _, f := range []string{`"status":101`, `"path":"/up"`, `"bytes_received":12,`, `"bytes_sent":20,`} {
			if !strings.Contains(line, f) {
				t.Errorf("access log line %s; want the upgrade's, with %s", line, f)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no access log line after the tunnel closed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.s.sessions() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := l.s.sessions(); n != 0 {
		t.Errorf("%d sessions after both ends closed", n)
	}
}

// An app that declines an Upgrade answers as usual, and the connection goes
// on as HTTP; a 101 to a request that asked for no Upgrade is a 502.
func TestUpgradeDeclined(t *testing.T) {
	l := newLoopServer(t, upgradeApp(t))
	c, br := l.conn(t)
	resp, body := roundTrip(t, c, br, "GET", "GET /decline HTTP/1.1\r\nHost: app\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\n")
	if resp.StatusCode != 200 || body != "plain" {
		t.Fatalf("declined upgrade: %d %q", resp.StatusCode, body)
	}
	if _, body := roundTrip(t, c, br, "GET", "GET /decline HTTP/1.1\r\nHost: app\r\n\r\n"); body != "plain" {
		t.Fatalf("the next request on the connection: %q", body)
	}
	resp, _ = roundTrip(t, c, br, "GET", "GET /up HTTP/1.1\r\nHost: app\r\nX-Shout: no\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Fatalf("the app saw an upgrade that the client never asked for: %d", resp.StatusCode)
	}
}

// The bytes after a 101 are not HTTP: a client that sends what looks like
// a request head gets it echoed by the app, not parsed by the agent.
func TestUpgradeTunnelIsOpaque(t *testing.T) {
	l := newLoopServer(t, upgradeApp(t))
	c, br := l.conn(t)
	io.WriteString(c, "GET /up HTTP/1.1\r\nHost: app\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v, %v", resp, err)
	}
	io.WriteString(c, "get \x00 http/9\r\n\r\n")
	want := "earlyGET \x00 HTTP/9\r\n\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(bufio.NewReader(br), got); err != nil || string(got) != want {
		t.Fatalf("%q, %v; want %q", got, err, want)
	}
}

// An Upgrade with a body is served on the loop: the body goes to the app
// whole (re-framed when chunked), then the bytes the client sent after it
// are the tunnel's first, whether they came in the same write or later.
func TestUpgradeWithABody(t *testing.T) {
	l := newLoopServer(t, upgradeApp(t))
	for _, framing := range []string{
		"Content-Length: 5\r\n\r\nhello",
		"Transfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3;x=y\r\nllo\r\n0\r\n\r\n",
	} {
		c, br := l.conn(t)
		io.WriteString(c, "POST /up HTTP/1.1\r\nHost: app\r\nUpgrade: shout\r\nConnection: Upgrade\r\n"+framing+"after ")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 101 || resp.Header.Get("X-Body") != "hello" {
			t.Fatalf("%q: response %d %v; want 101 with the app's X-Body: hello", framing, resp.StatusCode, resp.Header)
		}
		if n := l.s.sessions(); n != 1 {
			t.Errorf("%d sessions on the loop during the tunnel; want 1 (not handed to net/http)", n)
		}
		io.WriteString(c, "more")
		want := "earlyAFTER MORE"
		got := make([]byte, len(want))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
			t.Fatalf("%q: after the 101: %q, %v; want %q", framing, got, err, want)
		}
		c.(*net.TCPConn).CloseWrite()
		if rest, err := io.ReadAll(br); err != nil || string(rest) != "bye" {
			t.Fatalf("%q: after the client's half-close: %q, %v; want \"bye\"", framing, rest, err)
		}
	}
}
