package httpproxy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

// apply gives l's server the config in text, with PORT the app's port.
func (l *loopServer) apply(t *testing.T, text string) {
	t.Helper()
	cfg, err := config.Parse([]byte(strings.ReplaceAll(text, "PORT", fmt.Sprint(l.app.Port()))), decor.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.s.Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

// statuses sends a GET for each path on one connection and returns the
// statuses, in order.
func (l *loopServer) statuses(t *testing.T, paths ...string) []int {
	t.Helper()
	c, br := l.conn(t)
	defer c.Close()
	var out []int
	for _, p := range paths {
		resp, _ := roundTrip(t, c, br, "GET", "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
		out = append(out, resp.StatusCode)
	}
	return out
}

func count(statuses []int, status int) int {
	n := 0
	for _, s := range statuses {
		if s == status {
			n++
		}
	}
	return n
}

// Regression: each route's chain built a limiter of its own, so a port's
// "requestsPerSecond: 500 # all clients together" admitted about 1,100
// across deploy/config.yaml's three routes, and every reload refilled it.
func TestRateLimitSharedByRoutesAndReloads(t *testing.T) {
	l := newLoopServer(t, testApp())
	// One token per 100 s: none comes back while the test runs.
	const cfg = `
ports:
  "PORT":
    protocol: http
    http: {rateLimit: {requestsPerSecond: 0.01, burst: 4}}
    routes:
    - {prefix: /a}
    - {prefix: /b}
    - {prefix: /own, rateLimit: {requestsPerSecond: 0.01, burst: 2}}
`
	l.apply(t, cfg)
	got := l.statuses(t, "/a", "/b", "/c", "/a", "/b", "/c", "/a", "/b", "/c")
	if n := count(got, http.StatusOK); n != 4 {
		t.Errorf("port's routes together: %d of %v answered 200; want the port's burst, 4", n, got)
	}
	if got := l.statuses(t, "/own", "/own", "/own"); count(got, http.StatusOK) != 2 || got[2] != http.StatusTooManyRequests {
		t.Errorf("a route with a limit of its own: %v; want 200 200 429 (its own burst of 2)", got)
	}
	l.apply(t, cfg) // a reload that changes nothing
	if got := l.statuses(t, "/a", "/own"); count(got, http.StatusTooManyRequests) != 2 {
		t.Errorf("after an unchanged reload: %v; want 429 429 (the buckets were not refilled)", got)
	}
	l.apply(t, strings.Replace(cfg, "burst: 4", "burst: 5", 1))
	if got := l.statuses(t, "/a", "/own"); got[0] != http.StatusOK || got[1] != http.StatusTooManyRequests {
		t.Errorf("after the port's limit changed: %v; want 200 (a new bucket) 429 (the route's, unchanged)", got)
	}
}

// A section that serves many ports (here the default) has a limiter per
// port: another port's traffic does not use up this one's.
func TestRateLimitPerPortOfTheDefault(t *testing.T) {
	l := newLoopServer(t, testApp())
	l.apply(t, `default: {protocol: http, http: {rateLimit: {requestsPerSecond: 0.01, burst: 2}}}`)
	if got := l.statuses(t, "/", "/", "/"); count(got, http.StatusOK) != 2 {
		t.Fatalf("port %d: %v; want 2 of 3 answered 200", l.app.Port(), got)
	}
	other := newLoopServer(t, testApp()) // another app port, same server
	other.s = l.s
	if got := other.statuses(t, "/", "/"); count(got, http.StatusOK) != 2 {
		t.Errorf("port %d after port %d used its burst: %v; want 200 200", other.app.Port(), l.app.Port(), got)
	}
}

// Regression: each route had a breaker of its own ("maxRequests: 256"
// admitted 768 across three routes), and a reload forgot the requests in
// flight.
func TestCircuitBreakerSharedByRoutesAndReloads(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			entered <- struct{}{}
			<-release
		}
	})
	l := newLoopServer(t, app)
	const cfg = `
ports:
  "PORT":
    protocol: http
    http: {circuitBreaker: {maxRequests: 2}}
    routes: [{prefix: /a}, {prefix: /b}]
`
	l.apply(t, cfg)
	var wg sync.WaitGroup
	slow := func(path string) {
		wg.Add(1)
		go func() { defer wg.Done(); l.statuses(t, path) }()
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not reach the app", path)
		}
	}
	slow("/a/slow")
	slow("/b/slow")
	if got := l.statuses(t, "/c"); got[0] != http.StatusServiceUnavailable {
		t.Errorf("a third request while two of the port's routes hold the two slots: %v; want 503", got)
	}
	l.apply(t, cfg)
	if got := l.statuses(t, "/a"); got[0] != http.StatusServiceUnavailable {
		t.Errorf("after an unchanged reload: %v; want 503 (the requests in flight still count)", got)
	}
	l.apply(t, strings.Replace(cfg, "maxRequests: 2", "maxRequests: 3", 1))
	slow("/a/slow") // admitted: the bound is 3 now, with 2 in flight
	if got := l.statuses(t, "/b"); got[0] != http.StatusServiceUnavailable {
		t.Errorf("with 3 in flight under a bound of 3: %v; want 503", got)
	}
	close(release)
	wg.Wait()
	if got := l.statuses(t, "/a", "/b", "/c"); count(got, http.StatusOK) != 3 {
		t.Errorf("after the slow requests ended: %v; want 200 200 200", got)
	}
}

// A response the app cuts off aborts the handler (http.ErrAbortHandler);
// the exchange still ends, so the breaker's count comes down and the next
// request is admitted.
func TestBreakerReleasedByACutResponse(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cut" {
			return
		}
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("ten bytes."))
		w.(http.Flusher).Flush()
		c, _, _ := http.NewResponseController(w).Hijack()
		c.Close()
	})
	l := newLoopServer(t, app)
	l.apply(t, `
ports:
  "PORT":
    protocol: http
    http: {circuitBreaker: {maxRequests: 1}}
`)
	c, br := l.conn(t)
	io.WriteString(c, "GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("the cut response read whole; want it cut")
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := l.statuses(t, "/")
		if got[0] == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a cut response: %v; want 200 (the breaker's slot given back)", got)
		}
		time.Sleep(10 * time.Millisecond) // the cut one may still be ending
	}
}

// An error page replaces the app's body, with its own length, and a HEAD
// gets the head alone; a limited request carries Retry-After.
func TestReplacedBodyAndRetryAfter(t *testing.T) {
	page := filepath.Join(t.TempDir(), "404.html")
	os.WriteFile(page, []byte("<h1>custom</h1>"), 0o644)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "the app's own 404 text", 404) })
	l := newLoopServer(t, app)
	l.apply(t, `
ports:
  "PORT":
    protocol: http
    http: {errorPages: {pages: {"404": `+page+`}}}
    routes: [{prefix: /limited, rateLimit: {requestsPerSecond: 0.01, burst: 1}}]
`)
	c, br := l.conn(t)
	defer c.Close()
	resp, body := roundTrip(t, c, br, "GET", "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 404 || body != "<h1>custom</h1>" || resp.ContentLength != int64(len(body)) {
		t.Errorf("GET: %d %q (length %d); want 404 with the page and its length", resp.StatusCode, body, resp.ContentLength)
	}
	resp, body = roundTrip(t, c, br, "HEAD", "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 404 || body != "" {
		t.Errorf("HEAD: %d %q; want 404 and no body", resp.StatusCode, body)
	}
	roundTrip(t, c, br, "GET", "GET /limited HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ = roundTrip(t, c, br, "GET", "GET /limited HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over the limit: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
