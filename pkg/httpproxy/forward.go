package httpproxy

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/veneermesh/veneer/pkg/exchange"
	"github.com/veneermesh/veneer/pkg/upstream"
	"golang.org/x/net/http/httpguts"
)

// forwarder sends a request to the app, the original destination of the
// client's connection, keeping its Host and its own forwarding headers.
//
// HTTP/1 requests that pkg/upstream sends itself (no upgrade, no body of
// unknown or large size: nearly all) it forwards as ReverseProxy would,
// without ReverseProxy's costs per request: a deep copy of the request, a
// client trace and the context that carries it, a media-type parse of every
// response. CPU profiles under wrk put those at a tenth of the agent's
// time. Everything else (HTTP/2, upgrades, streamed uploads) goes through
// ReverseProxy.
type forwarder struct {
	rp               *httputil.ReverseProxy
	rt               http.RoundTripper
	connect, request time.Duration
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	exchange.From(r.Context()).ConnectTimeout = f.connect
	if f.request > 0 {
		ctx, cancel := context.WithTimeoutCause(r.Context(), f.request, errRequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if r.ProtoMajor != 1 || !f.direct(w, r) {
		f.rp.ServeHTTP(w, r)
	}
}

// direct forwards r when pkg/upstream sends it itself, and reports whether
// it did; when not, it has done nothing.
func (f *forwarder) direct(w http.ResponseWriter, r *http.Request) bool {
	hc := r.Context().Value(connKey{}).(*conn)
	out := *r // a shallow copy: the header is copied only if changed below
	u := *r.URL
	u.Scheme, u.Host = "http", hc.dstAddr
	out.URL = &u
	out.RequestURI = "" // a client request's
	out.Close = false
	if r.ContentLength == 0 {
		out.Body = nil
	}
	if !upstream.Owns(&out) {
		return false
	}

	h := r.Header
	if hasHopByHop(h) || h["Expect"] != nil {
		h = h.Clone()
		removeHopByHop(h)
		dropExpect(h)
		// The app may send trailers: this hop passes them on.
		if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
			h["Te"] = []string{"trailers"}
		}
	}
	if _, ok := h["User-Agent"]; !ok {
		// Without it Request.Write would send Go's own; an empty value
		// sends none. Added in place: nothing reads it later.
		h["User-Agent"] = []string{""}
	}
	// Header names as the client spelled them (and the response's as the
	// app spelled them: responseCase).
	out.Header = hc.names.Spelled(h)

	res, err := f.rt.RoundTrip(&out)
	if err != nil {
		errorHandler(w, &out, err)
		return true
	}
	if hasHopByHop(res.Header) {
		removeHopByHop(res.Header)
	}
	wh := w.Header()
	for k, vv := range res.Header {
		if len(wh[k]) == 0 {
			wh[k] = vv // the response is this request's alone: no copy
		} else {
			wh[k] = append(wh[k], vv...)
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		wh.Add("Trailer", strings.Join(slices.Sorted(maps.Keys(res.Trailer)), ", "))
	}
	w.WriteHeader(res.StatusCode)
	// A body of unknown length, or an event stream, reaches the client as
	// the app sends it.
	stream := res.ContentLength < 0 || isEventStream(res.Header.Get("Content-Type"))
	if err := copyBody(w, res.Body, stream); err != nil {
		res.Body.Close()
		exchange.From(r.Context()).SetFailure(err.Error())
		// Half a response cannot be mended: the client's connection ends
		// (ReverseProxy does the same).
		panic(http.ErrAbortHandler)
	}
	res.Body.Close() // now, for res.Trailer
	if len(res.Trailer) == 0 {
		return true
	}
	// Chunked even when short: a Content-Length cannot carry trailers.
	http.NewResponseController(w).Flush()
	if len(res.Trailer) == announced {
		maps.Copy(wh, res.Trailer)
		return true
	}
	for k, vv := range res.Trailer {
		for _, v := range vv {
			wh.Add(http.TrailerPrefix+k, v)
		}
	}
	return true
}

// dropExpect takes Expect out of a request to the app. The agent answers
// Expect: 100-continue itself (net/http's server sends 100 Continue when
// the body is first read, and the body then goes to the app whole), so the
// app is not asked: its own 100 Continue would reach the client as a
// second one. Envoy does the same by default.
func dropExpect(h http.Header) { delete(h, "Expect") }

// copyBody copies the app's response body to w, flushing after every
// write when stream is set.
func copyBody(w http.ResponseWriter, body io.Reader, stream bool) error {
	bp := buffers.Get().(*[bufSize]byte)
	defer buffers.Put(bp)
	var rc *http.ResponseController
	if stream {
		rc = http.NewResponseController(w)
	}
	for {
		n, rerr := body.Read(bp[:])
		if n > 0 {
			if _, err := w.Write(bp[:n]); err != nil {
				return err // the client is gone
			}
			if stream {
				rc.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// hopByHop are the headers of one connection, which a proxy does not pass
// on (RFC 9110 7.6.1), as ReverseProxy's list.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func hasHopByHop(h http.Header) bool {
	for _, k := range hopByHop {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// removeHopByHop removes the hop-by-hop headers and those the Connection
// header names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopByHop {
		delete(h, k)
	}
}

func isEventStream(contentType string) bool {
	const es = "text/event-stream"
	return len(contentType) >= len(es) && strings.EqualFold(contentType[:len(es)], es) &&
		(len(contentType) == len(es) || contentType[len(es)] == ';' || contentType[len(es)] == ' ')
}

// informational is the HTTP/1.1 transports' Got1xx hook: it passes an
// app's 100 Continue or 103 Early Hints on to the client, and leaves the
// final response's headers as they were (ReverseProxy clears them, which
// lost X-Request-Id on the final response).
func informational(req *http.Request, code int, h http.Header) error {
	w := exchange.From(req.Context()).W
	if w == nil {
		return nil
	}
	wh := w.Header()
	kept := maps.Clone(wh)
	maps.Copy(wh, h)
	w.WriteHeader(code)
	clear(wh)
	maps.Copy(wh, kept)
	return nil
}
