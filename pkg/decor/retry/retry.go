// Package retry re-sends a request the app failed before answering, as
// Envoy's retry policy does, with the guards that keep retries from making an
// outage worse:
//
//   - only the listed methods (by default the idempotent ones, never POST),
//     and only requests without a body, which can be sent again exactly;
//
//   - only when nothing was received from the app: the connection was
//     refused, or closed or reset before any response byte, or (if listed)
//     the app answered 503;
//
//   - at most Attempts retries, each after an exponential, jittered backoff;
//
//   - a budget: retries in flight may be at most Budget percent of requests
//     in flight (and at least 3), so a failing app is not hit twice as hard.
//
//     retries: {attempts: 2, on: [connect-failure, reset, 503], backoff: 25ms, budget: 20}
//
// A request that runs out of attempts carries flag URX.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
)

// Key is the block's key in an http section.
const Key = "retries"

// Block is the kind of the block.
var Block = config.BlockOf[Config](Key)

// Config re-sends a request the app failed before answering.
type Config struct {
	// Attempts is the retries after the first try, 1-10; no default.
	Attempts int `yaml:"attempts" json:"attempts"`
	// On lists when to retry: connect-failure, reset (the app closed the
	// connection before any response byte), 503. Empty means the first two.
	On []string `yaml:"on" json:"on,omitempty"`
	// Backoff is the first wait, doubled per retry, with jitter. 0 means 25ms.
	Backoff config.Duration `yaml:"backoff" json:"backoff"`
	// Budget is the share of requests in flight that may be retries at
	// once, in percent; 0 means 20. It stops retries from piling onto an
	// app that is down.
	Budget float64 `yaml:"budget" json:"budget"`
	// Methods that may be retried. Empty means the idempotent ones without a
	// body: GET, HEAD, OPTIONS, TRACE, PUT and DELETE. Never POST unless listed.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
}

var conditions = []string{"connect-failure", "reset", "503"}

func (c *Config) Provision() error {
	if c.Attempts < 1 || c.Attempts > 10 {
		return config.Errorf("attempts", "%d is not between 1 and 10", c.Attempts)
	}
	for _, on := range c.On {
		if !slices.Contains(conditions, on) {
			return config.Errorf("on", "%q is not a retry condition (%s)", on, strings.Join(conditions, ", "))
		}
	}
	if len(c.On) == 0 {
		c.On = []string{"connect-failure", "reset"}
	}
	if c.Backoff == 0 {
		c.Backoff = config.Duration(25 * time.Millisecond)
	}
	if err := config.Percent("budget", c.Budget); err != nil {
		return err
	}
	if c.Budget == 0 {
		c.Budget = 20
	}
	for i, m := range c.Methods {
		if !http1.Method(m) {
			return config.Errorf(fmt.Sprintf("methods[%d]", i), "%q is not an HTTP method", m)
		}
	}
	if len(c.Methods) == 0 {
		c.Methods = slices.Clone(idempotent)
	}
	return nil
}

// idempotent are the methods that may be sent twice (RFC 9110 9.2.2).
var idempotent = []string{"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}

// Idempotent says whether a request of method may be sent twice (RFC 9110
// 9.2.2): what a route retries by default, and what both HTTP paths send
// again on a fresh connection when a kept one closed under the request.
func Idempotent(method string) bool { return slices.Contains(idempotent, method) }

// Retrier is a RoundTripper that retries through next.
type Retrier struct {
	next      http.RoundTripper
	attempts  int
	onConnect bool
	onReset   bool
	on503     bool
	backoff   time.Duration
	budget    float64
	methods   []string

	inFlight, retrying atomic.Int64
}

// New wraps next with cfg, which Provision has checked.
func New(cfg Config, next http.RoundTripper) *Retrier {
	return &Retrier{
		next:      next,
		attempts:  cfg.Attempts,
		onConnect: slices.Contains(cfg.On, "connect-failure"),
		onReset:   slices.Contains(cfg.On, "reset"),
		on503:     slices.Contains(cfg.On, "503"),
		backoff:   cfg.Backoff.D(),
		budget:    cfg.Budget / 100,
		methods:   cfg.Methods,
	}
}

func (t *Retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	t.Begin()
	defer t.End()
	if !t.retriable(req) {
		return t.next.RoundTrip(req)
	}
	for attempt := 0; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		if !t.shouldRetry(resp, err) {
			return resp, err
		}
		if ok, exhausted := t.Allow(attempt); !ok {
			if exhausted {
				exchange.From(req.Context()).AddFlag(exchange.RetriesExhausted)
			}
			return resp, err
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err := t.wait(req.Context(), attempt); err != nil {
			return nil, err
		}
	}
}

// The event loop's HTTP path drives the same policy step by step, its
// backoff on a loop timer:
//
//	t.Begin(); defer t.End()
//	if t.Retriable(method, body, upgrade) && t.Wants(connectFailure, reset, status) {
//		if ok, exhausted := t.Allow(attempt); ok { wait t.Backoff(attempt), then t.Release() and send again }
//	}

// Begin counts a request in flight, for the budget; End when it ends.
func (t *Retrier) Begin() { t.inFlight.Add(1) }

// End: the request Begin counted has ended.
func (t *Retrier) End() { t.inFlight.Add(-1) }

// Retriable says whether a request may be sent again: a listed method,
// no body to send again, no upgrade.
func (t *Retrier) Retriable(method string, body, upgrade bool) bool {
	return slices.Contains(t.methods, method) && !body && !upgrade
}

// Wants says whether an attempt that ended so asks for another: the
// connection to the app failed, it was closed or reset before any
// response byte, or the app answered status.
func (t *Retrier) Wants(connectFailure, reset bool, status int) bool {
	switch {
	case connectFailure:
		return t.onConnect
	case reset:
		return t.onReset
	}
	return t.on503 && status == http.StatusServiceUnavailable
}

// Allow says whether attempt (the retries so far) may be followed by
// another: the attempts are not used up and the budget has room. When it
// allows, the retry counts against the budget until Release; exhausted
// says the attempts ran out (flag URX).
func (t *Retrier) Allow(attempt int) (ok, exhausted bool) {
	if attempt >= t.attempts {
		return false, true
	}
	return t.withinBudget(), false
}

// Backoff is how long to wait before retry attempt+1: exponential, and
// jittered between half and all of it.
func (t *Retrier) Backoff(attempt int) time.Duration {
	d := t.backoff << attempt
	return d/2 + rand.N(d/2+1)
}

// Release ends the retry Allow counted, once its backoff is over.
func (t *Retrier) Release() { t.retrying.Add(-1) }

// retriable: a listed method, and no body to send again.
func (t *Retrier) retriable(req *http.Request) bool {
	return t.Retriable(req.Method, req.Body != nil && req.Body != http.NoBody, req.Header.Get("Upgrade") != "")
}

func (t *Retrier) shouldRetry(resp *http.Response, err error) bool {
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false // the client left or the request timed out: stop
		}
		return t.Wants(IsConnectFailure(err), true, 0)
	}
	return t.Wants(false, false, resp.StatusCode)
}

func (t *Retrier) withinBudget() bool {
	allowed := max(3, int64(t.budget*float64(t.inFlight.Load())))
	if t.retrying.Add(1) > allowed {
		t.retrying.Add(-1)
		return false
	}
	return true
}

func (t *Retrier) wait(ctx context.Context, attempt int) error {
	defer t.Release()
	timer := time.NewTimer(t.Backoff(attempt))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// IsConnectFailure reports whether err is a failure to connect to the app
// (nothing was sent), as opposed to a failure after the request went out.
func IsConnectFailure(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
