package httpproxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// errorHandler's classification, with the errors a real Transport returns.
func TestErrorHandler(t *testing.T) {
	closer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := http.NewResponseController(w).Hijack()
		c.Close() // no byte of response
	}))
	defer closer.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name, target string
		status       int
		flag         exchange.Flag
	}{
		{"app closes without answering", closer.URL, http.StatusServiceUnavailable, exchange.UpstreamReset},
		{"app not listening", down, http.StatusServiceUnavailable, exchange.UpstreamFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(tc.target)
			rp := httputil.NewSingleHostReverseProxy(u)
			rp.Transport = &http.Transport{DisableKeepAlives: true}
			rp.ErrorHandler = errorHandler
			ex := &exchange.Exchange{}
			r := httptest.NewRequest("POST", "/", nil) // not retried by the Transport
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r.WithContext(exchange.With(r.Context(), ex)))
			if rec.Code != tc.status || ex.Flags() != tc.flag {
				t.Errorf("status %d, flags %v (%s); want %d, %v", rec.Code, ex.Flags(), ex.Failure(), tc.status, tc.flag)
			}
		})
	}
}
