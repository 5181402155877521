package httpproxy

import (
	"context"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/veneermesh/veneer/pkg/exchange"
)

// forwarder sends an HTTP/2 request to the app, the original destination
// of the client's connection, through ReverseProxy: keeping its Host and
// its own forwarding headers, within the route's connect and request
// timeouts.
type forwarder struct {
	rp               *httputil.ReverseProxy
	connect, request time.Duration
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	exchange.From(r.Context()).ConnectTimeout = f.connect
	if f.request > 0 {
		ctx, cancel := context.WithTimeoutCause(r.Context(), f.request, errRequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	f.rp.ServeHTTP(w, r)
}
