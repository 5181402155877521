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
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
)

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

// New wraps next with cfg, which config.Parse has validated.
func New(cfg config.Retries, next http.RoundTripper) *Retrier {
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
	t.inFlight.Add(1)
	defer t.inFlight.Add(-1)
	if !t.retriable(req) {
		return t.next.RoundTrip(req)
	}
	for attempt := 0; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		if !t.shouldRetry(resp, err) {
			return resp, err
		}
		if attempt == t.attempts || !t.withinBudget() {
			if attempt == t.attempts {
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

// retriable: a listed method, and no body to send again.
func (t *Retrier) retriable(req *http.Request) bool {
	return slices.Contains(t.methods, req.Method) && (req.Body == nil || req.Body == http.NoBody) &&
		req.Header.Get("Upgrade") == ""
}

func (t *Retrier) shouldRetry(resp *http.Response, err error) bool {
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false // the client left or the request timed out: stop
		}
		if IsConnectFailure(err) {
			return t.onConnect
		}
		return t.onReset // closed or reset before any response byte
	}
	return t.on503 && resp.StatusCode == http.StatusServiceUnavailable
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
	defer t.retrying.Add(-1)
	d := t.backoff << attempt
	d = d/2 + rand.N(d/2+1) // jitter: between half and all of it
	timer := time.NewTimer(d)
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
