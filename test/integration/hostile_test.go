//go:build linux

package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawApp records every byte it receives, per connection, and answers each
// connection once with a fixed HTTP response after reading a head.
type rawApp struct {
	mu   sync.Mutex
	got  []string
	addr string
}

func (p *pod) startRawApp(port int) *rawApp {
	p.t.Helper()
	a := &rawApp{}
	p.servePod(fmt.Sprintf(":%d", port), func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var all []byte
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if strings.Contains(string(all), "\r\n\r\n") && !strings.Contains(string(all), "chunked") {
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
			}
			if err != nil {
				break
			}
		}
		a.mu.Lock()
		a.got = append(a.got, string(all))
		a.mu.Unlock()
	})
	return a
}

func (a *rawApp) received() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.got, "|")
}

// rawRequest sends req on a new connection to the pod and returns the
// status line of the answer ("" if the connection closed without one).
func (p *pod) rawRequest(port int, req string) string {
	p.t.Helper()
	c := p.mustDial(port, 10*time.Second)
	defer c.Close()
	c.Write([]byte(req))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// Request smuggling and malformed heads are refused with 400 (or 414, 431)
// before the app sees a byte.
func TestHostileHeads(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	app := p.startRawApp(9096)
	p.mustInit("--inbound-ports", "9096")
	agent := p.startAgent("--config", p.writeConfig("ports: {\"9096\": {protocol: http}}\n"))
	for _, tc := range []struct{ name, req, want string }{
		{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 400 Bad Request"},
		{"differing Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400 Bad Request"},
		{"obsolete line folding", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", "HTTP/1.1 400 Bad Request"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 501 Not Implemented"},
		{"not HTTP", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"request target of 9 KiB", "GET /" + strings.Repeat("a", 9<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 414 Request URI Too Long"},
		{"head of 70 KiB", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
	} {
		if got := p.rawRequest(9096, tc.req); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: answer %q; want %q", tc.name, got, tc.want)
		}
	}
	if got := app.received(); got != "" {
		t.Errorf("the app received %q; want nothing of these requests", got)
	}
	// The access log is written out within a second.
	p.waitFor("the refusals in the access log with flag DPE", func() bool {
		return strings.Contains(agent.log.String(), `"response_flags":"DPE"`)
	})

	// An invalid chunk size: 400, and the app never gets a complete request.
	got := p.rawRequest(9096, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
	if got != "HTTP/1.1 400 Bad Request" {
		t.Errorf("invalid chunk size: answer %q; want 400", got)
	}
	p.waitFor("the app's cut request", func() bool { return app.received() != "" })
	if r := app.received(); strings.Contains(r, "0\r\n\r\n") || strings.Contains(r, "abc") {
		t.Errorf("the app received %q; want no body that it could take for a complete request", r)
	}

	// A well-formed request still goes through.
	if got := p.rawRequest(9096, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); got != "HTTP/1.1 200 OK" {
		t.Errorf("a valid request after all that: %q", got)
	}
}

// Slow heads and slow bodies are cut off by the agent's timeouts while
// everyone else is served.
func TestSlowClients(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	app := p.startTestApp(":9090")
	p.mustInit("--inbound-ports", "9090")
	p.startAgent("--header-timeout", "1s", "--body-idle-timeout", "1s",
		"--config", p.writeConfig("ports: {\"9090\": {protocol: http}}\n"))

	const slow = 20
	ended := make(chan struct{}, 2*slow)
	for i := 0; i < slow; i++ {
		// Slowloris: a head one byte at a time, never finished.
		go func() {
			c, err := p.dial(9090, 20*time.Second)
			if err != nil {
				ended <- struct{}{}
				return
			}
			defer c.Close()
			head := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000)
			for j := 0; j < len(head); j++ {
				if _, err := c.Write([]byte{head[j]}); err != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			ended <- struct{}{}
		}()
		// A slow body: 10 bytes of 100, then silence.
		go func() {
			c, err := p.dial(9090, 20*time.Second)
			if err != nil {
				ended <- struct{}{}
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
			io.ReadAll(c) // until the agent gives up on it
			ended <- struct{}{}
		}()
	}
	// Everyone else is served meanwhile.
	for i := 0; i < 5; i++ {
		if resp, _ := p.getPath(9090, "/ok"); resp.StatusCode != http.StatusOK {
			t.Fatalf("a normal request during the slow ones: %d", resp.StatusCode)
		}
	}
	for i := 0; i < 2*slow; i++ {
		select {
		case <-ended:
		case <-time.After(15 * time.Second):
			t.Fatalf("%d of %d slow connections were still open after 15s; want them cut by the 1s timeouts", 2*slow-i, 2*slow)
		}
	}
	if n := app.count("/sha256"); n > slow {
		t.Errorf("the app saw %d slow uploads; want at most %d", n, slow)
	}
}

// A flood past --max-connections is reset, the agent survives, and serves
// again once connections close.
func TestConnectionFlood(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.startTestApp(":9090")
	p.mustInit("--inbound-ports", "9090")
	p.startAgent("--max-connections", "5")
	var held []net.Conn
	for i := 0; i < 5; i++ {
		held = append(held, p.mustDial(9090, time.Minute))
	}
	p.waitFor("five connections open", func() bool { return p.metric("veneer_tcp_active_connections", "9090") == 5 })
	reset := 0
	for i := 0; i < 20; i++ {
		if isReset(p.firstRead(9090)) {
			reset++
		}
	}
	if reset != 20 {
		t.Errorf("%d of 20 connections past the limit were reset; want all", reset)
	}
	for _, c := range held {
		c.Close()
	}
	p.waitFor("the held connections closed", func() bool { return p.metric("veneer_tcp_active_connections", "9090") == 0 })
	if resp, _ := p.getPath(9090, "/after"); resp.StatusCode != http.StatusOK {
		t.Errorf("after the flood: %d; want 200", resp.StatusCode)
	}
}
