//go:build linux

package integration

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// testApp is a Go app inside the pod that reports what it received.
type testApp struct {
	hits  sync.Map // path -> *atomic.Int64
	flaky atomic.Int64
	hold  chan struct{} // /held waits for it to close
	conns atomic.Int64  // connections accepted
}

func (a *testApp) count(path string) int64 {
	v, _ := a.hits.LoadOrStore(path, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (a *testApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, _ := a.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	switch {
	case r.URL.Path == "/slow":
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	case r.URL.Path == "/held":
		<-a.hold
	case r.URL.Path == "/flaky":
		// The first try of each pair: close without a byte of response.
		if a.flaky.Add(1)%2 == 1 {
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
			return
		}
	case r.URL.Path == "/login":
		// A session cookie from the client's: credentials both ways.
		w.Header().Set("Set-Cookie", "session=renewed-"+r.Header.Get("Cookie"))
		fmt.Fprintln(w, "logged in")
		return
	case r.URL.Path == "/missing":
		http.Error(w, "the app's own 404", http.StatusNotFound)
		return
	case r.URL.Path == "/sha256":
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
		return
	case r.URL.Path == "/download":
		size := int64(100 << 20)
		fmt.Sscan(r.URL.Query().Get("size"), &size)
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, io.LimitReader(zeros{}, size))
		return
	case r.Header.Get("Upgrade") == "websocket":
		websocketEcho(w, r)
		return
	}
	w.Header().Set("X-App-Header", "from-app")
	w.Header().Set("Server", "testapp")
	json.NewEncoder(w).Encode(map[string]any{
		"peer": r.RemoteAddr, "proto": r.Proto, "headers": r.Header, "path": r.URL.Path,
	})
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// websocketEcho completes a WebSocket handshake (RFC 6455) and echoes the
// bytes that follow: enough to prove the Upgrade passed through the agent.
func websocketEcho(w http.ResponseWriter, r *http.Request) {
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	brw.Flush()
	io.Copy(c, brw)
}

// startTestApp serves the test app inside the pod on addr, HTTP/1 and h2c.
func (p *pod) startTestApp(addr string) *testApp {
	p.t.Helper()
	l, err := p.Pod.Pod.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	app := &testApp{hold: make(chan struct{})}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: app, Protocols: protos, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			app.conns.Add(1)
		}
	}}
	go srv.Serve(l)
	p.t.Cleanup(func() {
		select {
		case <-app.hold:
		default:
			close(app.hold)
		}
		srv.Close()
	})
	return app
}

// writeConfig writes the agent's config file, readable by UID 1337.
func (p *pod) writeConfig(body string) string {
	p.t.Helper()
	dir, err := os.MkdirTemp("", "veneer-config-")
	if err != nil {
		p.t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	p.t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// do sends a request from the client namespace.
func (p *pod) do(req *http.Request) (*http.Response, string) {
	p.t.Helper()
	resp, err := p.client(p.Client).Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (p *pod) getPath(port int, path string, hdr ...string) (*http.Response, string) {
	p.t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s:%d%s", localpod.PodIP, port, path), nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return p.do(req)
}

// metricWith reads veneer_requests_total for a label set.
func (p *pod) requests(port, code, flags string) float64 {
	p.t.Helper()
	resp, err := p.client(p.Pod.Pod).Get("http://127.0.0.1:15000/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(fmt.Sprintf(`(?m)^veneer_requests_total\{code="%s",direction="inbound",flags="%s",method="GET",port="%s",tls="(?:true|false)"\} (\d+)`,
		regexp.QuoteMeta(code), regexp.QuoteMeta(flags), port))
	var n float64
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		var v float64
		fmt.Sscan(m[1], &v)
		n += v
	}
	return n
}

const decoratedConfig = `
ports:
  "9090":
    protocol: http
    http:
      requestId: true
      tracing: true
      forwarded: true
      headers:
        request: {set: {x-env: test}, remove: [x-debug]}
        response: {set: {cache-control: no-store}, remove: [server]}
      authz:
        rules:
        - {action: deny, paths: [/admin]}
      errorPages:
        pages: {"404": %s}
    routes:
    - prefix: /limited
      rateLimit: {requestsPerSecond: 0.001, burst: 2}
    - prefix: /abort
      fault: {abort: {status: 503, percent: 100}}
    - prefix: /delayed
      fault: {delay: {fixed: 50ms, percent: 100}}
    - prefix: /slow
      timeouts: {request: 200ms}
    - prefix: /flaky
      retries: {attempts: 2}
    - prefix: /held
      circuitBreaker: {maxRequests: 1}
    - prefix: /logged
      accessLog:
        fields: [method, path, status, trace_id, route]
        requestHeaders: {tenant: X-Tenant-Id}
        responseHeaders: {app: X-App-Header}
`

// Every decoration, end to end through the real intercepted path, in both
// capture modes.
func TestHTTPDecorations(t *testing.T) {
	for _, mode := range []string{"redirect", "tproxy"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testHTTPDecorations(t, mode)
		})
	}
}

func testHTTPDecorations(t *testing.T, mode string) {
	p := newPod(t)
	app := p.startTestApp(":9090")
	page := filepath.Join(t.TempDir(), "404.html")
	os.WriteFile(page, []byte("<h1>custom not found</h1>"), 0o644)
	os.Chmod(filepath.Dir(page), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(page)), 0o755)
	cfg := p.writeConfig(fmt.Sprintf(decoratedConfig, page))
	p.mustInit("--inbound-ports", "9090", "--mode", mode)
	agent := p.startAgent("--config", cfg, "--mode", mode)
	// The app's peer: the agent in redirect mode, the client in tproxy mode.
	wantPeer := localpod.PodIP
	if mode == "tproxy" {
		wantPeer = localpod.ClientIP
	}

	t.Run("request id, trace context, forwarded, headers", func(t *testing.T) {
		resp, body := p.getPath(9090, "/echo", "X-Debug", "1", "X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7",
			"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		var seen struct {
			Peer    string
			Headers http.Header
		}
		if err := json.Unmarshal([]byte(body), &seen); err != nil {
			t.Fatalf("app answer %q: %v", body, err)
		}
		h := seen.Headers
		if id := h.Get("X-Request-Id"); id == "" || resp.Header.Get("X-Request-Id") != id {
			t.Errorf("X-Request-Id to the app %q, to the client %q; want the same new id", id, resp.Header.Get("X-Request-Id"))
		}
		if tp := h.Get("Traceparent"); !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || strings.Contains(tp, "00f067aa0ba902b7") {
			t.Errorf("traceparent to the app %q; want the same trace with a new span", tp)
		}
		if h.Get("X-B3-Traceid") != "80f198ee56343ba864fe8b2a57d3eff7" {
			t.Errorf("B3 header changed: %v", h)
		}
		if h.Get("X-Forwarded-For") != localpod.ClientIP.String() || !strings.Contains(h.Get("Forwarded"), "for="+localpod.ClientIP.String()) {
			t.Errorf("forwarding headers %v; want the client %s", h, localpod.ClientIP)
		}
		if !strings.HasPrefix(seen.Peer, wantPeer.String()+":") {
			t.Errorf("app's peer %s; want %s", seen.Peer, wantPeer)
		}
		if h.Get("X-Env") != "test" || h.Get("X-Debug") != "" {
			t.Errorf("request headers %v; want x-env set, x-debug removed", h)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Server") != "" || resp.Header.Get("X-App-Header") != "from-app" {
			t.Errorf("response headers %v; want cache-control set, server removed, the app's own kept", resp.Header)
		}
	})

	t.Run("authorization", func(t *testing.T) {
		resp, body := p.getPath(9090, "/admin/users")
		if resp.StatusCode != 403 || !strings.Contains(body, "denied") {
			t.Errorf("GET /admin/users = %d %q; want 403 from the agent", resp.StatusCode, body)
		}
		if n := app.count("/admin/users"); n != 0 {
			t.Errorf("the app received %d denied requests; want 0", n)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		var codes []int
		var retryAfter string
		for i := 0; i < 3; i++ {
			resp, _ := p.getPath(9090, "/limited")
			codes = append(codes, resp.StatusCode)
			retryAfter = resp.Header.Get("Retry-After")
		}
		if fmt.Sprint(codes) != "[200 200 429]" || retryAfter == "" {
			t.Errorf("codes %v, Retry-After %q; want [200 200 429] with Retry-After", codes, retryAfter)
		}
		if n := app.count("/limited"); n != 2 {
			t.Errorf("the app received %d of the limited requests; want 2", n)
		}
	})

	t.Run("fault abort and delay", func(t *testing.T) {
		if resp, body := p.getPath(9090, "/abort"); resp.StatusCode != 503 || !strings.Contains(body, "fault injected") {
			t.Errorf("GET /abort = %d %q; want 503 fault injected", resp.StatusCode, body)
		}
		if n := app.count("/abort"); n != 0 {
			t.Errorf("the app received %d aborted requests; want 0", n)
		}
		if resp, _ := p.getPath(9090, "/delayed"); resp.StatusCode != 200 || app.count("/delayed") != 1 {
			t.Errorf("GET /delayed = %d; want 200, delivered once", resp.StatusCode)
		}
	})

	t.Run("error page", func(t *testing.T) {
		resp, body := p.getPath(9090, "/missing")
		if resp.StatusCode != 404 || body != "<h1>custom not found</h1>" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET /missing = %d %q (%s); want the custom page", resp.StatusCode, body, resp.Header.Get("Content-Type"))
		}
	})

	t.Run("request timeout", func(t *testing.T) {
		resp, body := p.getPath(9090, "/slow")
		if resp.StatusCode != 504 || !strings.Contains(body, "timeout") {
			t.Errorf("GET /slow = %d %q; want 504 after the 200ms request timeout", resp.StatusCode, body)
		}
	})

	t.Run("retry", func(t *testing.T) {
		resp, _ := p.getPath(9090, "/flaky")
		if resp.StatusCode != 200 || app.count("/flaky") != 2 {
			t.Errorf("GET /flaky = %d after %d tries at the app; want 200 after 2", resp.StatusCode, app.count("/flaky"))
		}
	})

	t.Run("circuit breaker", func(t *testing.T) {
		first := make(chan int, 1)
		go func() { resp, _ := p.getPath(9090, "/held"); first <- resp.StatusCode }()
		p.waitFor("the first request at the app", func() bool { return app.count("/held") == 1 })
		resp, body := p.getPath(9090, "/held")
		if resp.StatusCode != 503 || !strings.Contains(body, "circuit breaker") {
			t.Errorf("second request in flight = %d %q; want 503 from the circuit breaker", resp.StatusCode, body)
		}
		close(app.hold)
		if code := <-first; code != 200 {
			t.Errorf("the first request = %d; want 200", code)
		}
		if n := app.count("/held"); n != 1 {
			t.Errorf("the app received %d requests; want only the first", n)
		}
	})

	t.Run("access log and metrics", func(t *testing.T) {
		p.waitFor("access log of the fault", func() bool { return strings.Contains(agent.log.String(), `"path":"/abort"`) })
		var line map[string]any
		for _, l := range strings.Split(agent.log.String(), "\n") {
			if strings.Contains(l, `"path":"/abort"`) {
				json.Unmarshal([]byte(l), &line)
			}
		}
		for _, k := range []string{"start_time", "method", "path", "protocol", "status", "response_flags", "bytes_received",
			"bytes_sent", "duration_ms", "upstream_service_time_ms", "x_forwarded_for", "user_agent", "request_id",
			"authority", "upstream_host", "client_address"} {
			if _, ok := line[k]; !ok {
				t.Errorf("access log line lacks %q: %v", k, line)
			}
		}
		if line["response_flags"] != "FI" || line["status"] != float64(503) || line["request_id"] == "" {
			t.Errorf("access log of /abort = %v; want status 503, flags FI, a request id", line)
		}
		// A route's own fields, in its order, with header fields.
		p.getPath(9090, "/logged?q=1", "X-Tenant-Id", "acme", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		want := `{"method":"GET","path":"/logged?q=1","status":200,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","route":"/logged","tenant":"acme","app":"from-app"}`
		p.waitFor("access log of /logged", func() bool { return strings.Contains(agent.log.String(), `"path":"/logged?q=1"`) })
		if !slices.Contains(strings.Split(agent.log.String(), "\n"), want) {
			t.Errorf("access log has no line %s", want)
		}
		for _, c := range []struct{ code, flags string }{{"503", "FI"}, {"403", "DENY"}, {"429", "RL"}, {"504", "UT"}, {"200", "DI"}, {"503", "UO"}} {
			if n := p.requests("9090", c.code, c.flags); n < 1 {
				t.Errorf("veneer_requests_total{code=%s,flags=%s} = %v; want at least 1", c.code, c.flags, n)
			}
		}
	})
}

// Keep-alive: many requests from one client connection reuse one pooled
// connection to the app, and an app that is down gets a fast 503 UF.
func TestKeepAliveAndAppDown(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	app := p.startTestApp(":9090")
	p.mustInit("--inbound-ports", "9090,9091,9092")
	p.startAgent("--config", p.writeConfig("ports: {\"9092\": {protocol: http}}\n"))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: p.Client.DialContext}}
	for i := 0; i < 20; i++ {
		resp, err := c.Get(fmt.Sprintf("http://%s:9090/ka", localpod.PodIP))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := app.conns.Load(); n != 1 {
		t.Errorf("20 keep-alive requests reached the app over %d connections; want 1 pooled connection", n)
	}
	// Nothing listens on 9091: a client that says nothing is reset once
	// the agent, having waited for its first bytes, fails to reach the
	// app; never left hanging.
	if err := p.firstRead(9091); !isReset(err) {
		t.Errorf("connection to a port with no app: %v; want a reset", err)
	}
	// On an http port the agent answers for the app: 503, flag UF.
	resp, body := p.getPath(9092, "/")
	if resp.StatusCode != 503 || !strings.Contains(body, "not reachable") || p.requests("9092", "503", "UF") != 1 {
		t.Errorf("GET on an http port with no app = %d %q; want 503 UF", resp.StatusCode, body)
	}
}

// Denied TCP is reset, and the app never sees it.
func TestTCPAuthorization(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	l, err := p.Pod.Pod.Listen("tcp", ":3306")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	cfg := p.writeConfig(fmt.Sprintf("ports:\n  \"3306\": {protocol: tcp, tcp: {authz: {rules: [{action: deny, clients: [%s/32]}]}}}\n", localpod.ClientIP))
	p.mustInit("--inbound-ports", "3306")
	agent := p.startAgent("--config", cfg)
	if err := p.firstRead(3306); !isReset(err) {
		t.Errorf("denied connection: %v; want a reset", err)
	}
	p.waitFor("the denial logged", func() bool { return strings.Contains(agent.log.String(), `"end":"denied"`) })
	if n := accepted.Load(); n != 0 {
		t.Errorf("the app accepted %d denied connections; want 0", n)
	}
}

// A server-first protocol on a captured port in auto mode answers at once:
// the sniffer sees the app speak first and forwards as TCP, whatever its
// (here very long) timeout.
func TestServerFirstProtocolNotStalled(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	l, err := p.Pod.Pod.Listen("tcp", ":2525")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "220 mail.test ESMTP ready\r\n")
			io.Copy(c, c)
			c.Close()
		}
	}()
	cfg := p.writeConfig("default: {protocol: auto, sniffTimeout: 60s}\n")
	p.mustInit("--inbound-ports", "2525")
	p.startAgent("--config", cfg)
	c := p.mustDial(2525, 20*time.Second) // far below the 60s sniff timeout
	defer c.Close()
	greeting, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || greeting != "220 mail.test ESMTP ready\r\n" {
		t.Fatalf("greeting = %q, %v; want it at once, not after the sniff timeout", greeting, err)
	}
}

// WebSocket (an Upgrade) passes through; h2c requests reach the app as
// HTTP/2; a 100 MiB body streams each way intact; a chunked upload and
// Expect: 100-continue work.
func TestHTTPProtocols(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.startTestApp(":9090")
	p.mustInit("--inbound-ports", "9090")
	p.startAgent() // the defaults: auto
	base := fmt.Sprintf("http://%s:9090", localpod.PodIP)

	t.Run("websocket", func(t *testing.T) {
		c := p.mustDial(9090, 10*time.Second)
		defer c.Close()
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
			t.Fatalf("upgrade response %v, %v; want 101 with the RFC 6455 accept key", resp, err)
		}
		c.Write([]byte("\x81\x05hello"))
		echo := make([]byte, 7)
		if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "\x81\x05hello" {
			t.Errorf("echo through the upgraded connection = %q, %v", echo, err)
		}
	})

	t.Run("h2c", func(t *testing.T) {
		protos := new(http.Protocols)
		protos.SetUnencryptedHTTP2(true)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: p.Client.DialContext, Protocols: protos}}
		resp, err := c.Get(base + "/h2")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var seen struct{ Proto string }
		json.NewDecoder(resp.Body).Decode(&seen)
		if resp.ProtoMajor != 2 || seen.Proto != "HTTP/2.0" {
			t.Errorf("h2c: client got %s, app saw %s; want HTTP/2 both sides", resp.Proto, seen.Proto)
		}
	})

	t.Run("100 MiB each way, chunked, Expect: 100-continue", func(t *testing.T) {
		const size = 100 << 20
		sum := sha256.New()
		io.Copy(sum, io.LimitReader(zeros{}, size))
		want := fmt.Sprintf("%d %s", size, hex.EncodeToString(sum.Sum(nil)))
		// No ContentLength: sent chunked, streamed.
		req, _ := http.NewRequest("POST", base+"/sha256", io.NopCloser(io.LimitReader(zeros{}, size)))
		req.Header.Set("Expect", "100-continue")
		c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: p.Client.DialContext, ExpectContinueTimeout: 5 * time.Second}}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != want {
			t.Errorf("upload: the app hashed %q; want %q", got, want)
		}
		resp, err = c.Get(base + "/download")
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || fmt.Sprintf("%d %s", n, hex.EncodeToString(h.Sum(nil))) != want {
			t.Errorf("download: %d bytes (%v); want %s", n, err, want)
		}
	})
}

// A config change takes effect without a restart; an invalid one is refused
// and the running config stays.
func TestConfigReload(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.startTestApp(":9090")
	cfg := p.writeConfig("default: {protocol: http}\n")
	p.mustInit("--inbound-ports", "9090")
	agent := p.startAgent("--config", cfg)
	if resp, _ := p.getPath(9090, "/x"); resp.StatusCode != 200 {
		t.Fatalf("before reload: %d; want 200", resp.StatusCode)
	}
	// Replace the file as Kubernetes does: write elsewhere, rename over.
	replace := func(body string) {
		tmp := cfg + ".tmp"
		os.WriteFile(tmp, []byte(body), 0o644)
		os.Rename(tmp, cfg)
	}
	replace("default: {protocol: http, http: {fault: {abort: {status: 418, percent: 100}}}}\n")
	p.waitFor("the new config", func() bool { resp, _ := p.getPath(9090, "/x"); return resp.StatusCode == 418 })

	replace("default: {protocol: http, http: {fault: {abort: {status: 418, percent: 150}}}}\n")
	p.waitFor("the refusal", func() bool { return strings.Contains(agent.log.String(), "config reload refused") })
	if !strings.Contains(agent.log.String(), "percent: 150 is not a percentage (0-100)") {
		t.Errorf("the refusal does not name the bad field:\n%s", agent.log)
	}
	if resp, _ := p.getPath(9090, "/x"); resp.StatusCode != 418 {
		t.Errorf("after an invalid reload: %d; want the running config's 418", resp.StatusCode)
	}
	var shown map[string]any
	resp, err := p.client(p.Pod.Pod).Get("http://127.0.0.1:15000/config")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&shown)
	resp.Body.Close()
	if !strings.Contains(fmt.Sprint(shown), "418") {
		t.Errorf("/config = %v; want the active config with the 418 fault", shown)
	}
}

// Header names keep the client's and the app's spelling over HTTP/1.
func TestHeaderCaseKept(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	l, err := p.Pod.Pod.Listen("tcp", ":9093")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	received := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			head.WriteString(line)
			if err != nil || line == "\r\n" {
				break
			}
		}
		received <- head.String()
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nx-app-thing: 1\r\nCONTENT-LENGTH: 2\r\n\r\nok")
	}()
	p.mustInit("--inbound-ports", "9093")
	p.startAgent()
	c := p.mustDial(9093, 10*time.Second)
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: app\r\nx-api-key: secret\r\nX-MiXeD-Case: 1\r\n\r\n")
	head := <-received
	for _, want := range []string{"\r\nx-api-key: secret\r\n", "\r\nX-MiXeD-Case: 1\r\n"} {
		if !strings.Contains(head, want) {
			t.Errorf("the app received %q; want it to contain %q as the client spelled it", head, want)
		}
	}
	var resp []byte
	buf := make([]byte, 4096)
	for !strings.HasSuffix(string(resp), "\r\n\r\nok") {
		n, err := c.Read(buf)
		resp = append(resp, buf[:n]...)
		if err != nil {
			break
		}
	}
	if !strings.Contains(string(resp), "\r\nx-app-thing: 1\r\n") {
		t.Errorf("the client received %q; want x-app-thing as the app spelled it", resp)
	}
}

// SIGHUP reloads the config on demand.
func TestConfigReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	cfg := p.writeConfig("default: {protocol: http}\n")
	p.mustInit("--inbound-ports", "9090")
	agent := p.startAgent("--config", cfg)
	agent.cmd.Process.Signal(syscall.SIGHUP)
	p.waitFor("the reload", func() bool { return strings.Contains(agent.log.String(), `"message":"config reloaded"`) })
}
