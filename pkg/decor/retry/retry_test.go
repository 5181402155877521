package retry

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// script answers RoundTrips from a list: an error, or a status.
type script struct {
	steps []any
	calls int
}

func (s *script) RoundTrip(*http.Request) (*http.Response, error) {
	step := s.steps[min(s.calls, len(s.steps)-1)]
	s.calls++
	if err, ok := step.(error); ok {
		return nil, err
	}
	return &http.Response{StatusCode: step.(int), Body: io.NopCloser(strings.NewReader(""))}, nil
}

var refused = &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}

func cfg(on ...string) Config {
	c := Config{Attempts: 2, On: on, Backoff: config.Duration(time.Millisecond), Budget: 20,
		Methods: []string{"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}}
	return c
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		on        []string
		method    string
		body      bool
		steps     []any
		wantCalls int
		wantCode  int
		wantURX   bool
	}{
		{"refused then ok", []string{"connect-failure"}, "GET", false, []any{refused, 200}, 2, 200, false},
		{"reset then ok", []string{"reset"}, "GET", false, []any{io.EOF, 200}, 2, 200, false},
		{"always refused", []string{"connect-failure"}, "GET", false, []any{refused}, 3, 0, true},
		{"503 retried when listed", []string{"503"}, "GET", false, []any{503, 200}, 2, 200, false},
		{"503 not retried by default", []string{"connect-failure", "reset"}, "GET", false, []any{503, 200}, 1, 503, false},
		{"reset not retried when not listed", []string{"connect-failure"}, "GET", false, []any{io.EOF, 200}, 1, 0, false},
		{"never a POST", []string{"connect-failure"}, "POST", false, []any{refused, 200}, 1, 0, false},
		{"never a body", []string{"connect-failure"}, "PUT", true, []any{refused, 200}, 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{steps: tc.steps}
			rt := New(cfg(tc.on...), s)
			var body io.Reader
			if tc.body {
				body = strings.NewReader("data")
			}
			req, _ := http.NewRequest(tc.method, "http://app/", body)
			ex := &exchange.Exchange{}
			req = req.WithContext(exchange.With(req.Context(), ex))
			resp, err := rt.RoundTrip(req)
			code := 0
			if err == nil {
				code = resp.StatusCode
			}
			if s.calls != tc.wantCalls || code != tc.wantCode || (ex.Flags()&exchange.RetriesExhausted != 0) != tc.wantURX {
				t.Errorf("calls %d, status %d, flags %v (err %v); want %d calls, status %d, URX %v",
					s.calls, code, ex.Flags(), err, tc.wantCalls, tc.wantCode, tc.wantURX)
			}
		})
	}
}

func TestIsConnectFailure(t *testing.T) {
	if !IsConnectFailure(refused) || IsConnectFailure(io.EOF) || IsConnectFailure(errors.New("x")) {
		t.Error("IsConnectFailure misclassifies")
	}
}

// The budget: retries in flight at most Budget percent of requests in
// flight, and at least 3.
func TestBudget(t *testing.T) {
	rt := New(cfg("connect-failure"), &script{steps: []any{200}})
	for i := 0; i < 3; i++ {
		if !rt.withinBudget() {
			t.Fatalf("retry %d refused with nothing in flight; want 3 allowed", i+1)
		}
	}
	if rt.withinBudget() {
		t.Error("a 4th concurrent retry with nothing in flight allowed; want the floor of 3")
	}
	rt.inFlight.Store(100) // 20% of 100: 20 retries at once
	for i := 3; i < 20; i++ {
		if !rt.withinBudget() {
			t.Fatalf("retry %d refused with 100 requests in flight; want 20 allowed", i+1)
		}
	}
	if rt.withinBudget() {
		t.Error("a 21st concurrent retry allowed; want 20% of 100")
	}
}
