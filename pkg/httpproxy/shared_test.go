package httpproxy

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/config"
)

// apply gives l's server the config in text, with PORT the app's port.
func (l *loopServer) apply(t *testing.T, text string) {
	t.Helper()
	cfg, err := config.Parse([]byte(strings.ReplaceAll(text, "PORT", fmt.Sprint(l.app.Port()))))
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
