package http1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// netHTTP is what net/http's server makes of the request head at the start
// of in: http.ReadRequest and the checks its server adds before a handler
// runs (server.go's readRequest: the version, Host, header names and
// values). nil: net/http refuses it, or needs more bytes.
func netHTTP(in []byte) *http.Request {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
	if err != nil {
		return nil
	}
	if req.ProtoMajor != 1 {
		return nil // (PRI * HTTP/2.0 is h2c's preface: handed off, not parsed)
	}
	// http.ReadRequest takes Host out of the header its server checks; the
	// same textproto reader under it gives them back.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(in)))
	tp.ReadLine()
	mh, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil
	}
	hosts, haveHost := mh["Host"]
	switch {
	case req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && req.Method != "CONNECT":
		return nil
	case len(hosts) > 1:
		return nil
	case len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]):
		return nil
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil
			}
		}
	}
	return req
}

func stricter(why string) bool {
	return slices.ContainsFunc(Stricter, func(s string) bool { return strings.HasPrefix(why, s) })
}

// FuzzRequest holds the parser to net/http's server: every head it accepts,
// net/http reads as the same method, target, version, fields and framing;
// every head net/http accepts, it accepts too, or refuses for a reason
// listed in Stricter.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a?b HTTP/1.0\r\nConnection: keep-alive\r\nX-Y:  z \r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
		"GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.2\r\nHost: [::1]:80\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var h Head
		n, err := h.ParseRequest(in, DefaultLimits)
		std := netHTTP(in)
		switch {
		case err != nil:
			if std != nil && !stricter(err.(*Error).Why) {
				t.Fatalf("%q: refused (%v), which net/http accepts", in, err)
			}
			return
		case n == 0:
			if std != nil {
				t.Fatalf("%q: incomplete, but net/http read a head", in)
			}
			return
		case h.Form == Absolute || h.Form == Authority:
			return // passed on to net/http, which decides
		case std == nil:
			t.Fatalf("%q: accepted, but net/http refuses it", in)
		}
		if got := string(h.Method.Of(in)); got != std.Method {
			t.Errorf("method %q; net/http %q", got, std.Method)
		}
		if got := string(h.Target.Of(in)); got != std.RequestURI {
			t.Errorf("target %q; net/http %q", got, std.RequestURI)
		}
		if h.Minor != std.ProtoMinor {
			t.Errorf("HTTP/1.%d; net/http 1.%d", h.Minor, std.ProtoMinor)
		}
		fields := http.Header{}
		for _, fd := range h.Fields {
			k := textproto.CanonicalMIMEHeaderKey(string(fd.Name.Of(in)))
			fields[k] = append(fields[k], string(fd.Value.Of(in)))
		}
		delete(fields, "Transfer-Encoding") // net/http takes it out into TransferEncoding
		delete(fields, "Host")              // and this into Host
		if !equalHeaders(fields, std.Header) {
			t.Errorf("fields %q; net/http %q", fields, std.Header)
		}
		chunked := len(std.TransferEncoding) == 1 && std.TransferEncoding[0] == "chunked"
		if h.Chunked != chunked {
			t.Errorf("chunked %v; net/http %q", h.Chunked, std.TransferEncoding)
		}
		if !h.Chunked && h.Length != std.ContentLength {
			t.Errorf("length %d; net/http %d", h.Length, std.ContentLength)
		}
		if h.Close != std.Close {
			t.Errorf("close %v; net/http %v", h.Close, std.Close)
		}
		if std.URL.Host == "" && std.Host != string(h.Host.Of(in)) {
			t.Errorf("host %q; net/http %q", h.Host.Of(in), std.Host)
		}
	})
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// FuzzChunked: a body decoded in pieces of any size gives the same data,
// trailers and end as in one piece, and the agent's re-framing of it
// decodes to the same again.
func FuzzChunked(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n1;e\r\n \r\n0\r\nX: 1\r\n\r\nrest"), uint8(1))
	f.Add([]byte("0\r\n\r\n"), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, piece uint8) {
		whole, wtr, wrest, werr := decode(in, len(in)+1)
		data, tr, rest, err := decode(in, int(piece)+1)
		if (err == nil) != (werr == nil) || !bytes.Equal(data, whole) && err == nil || !bytes.Equal(tr, wtr) || !bytes.Equal(rest, wrest) {
			t.Fatalf("%q in pieces of %d: %q %q %q %v; whole: %q %q %q %v", in, piece+1, data, tr, rest, err, whole, wtr, wrest, werr)
		}
		if err != nil {
			return
		}
		again, atr, _, err := decode(AppendLast(AppendChunk(nil, data), tr), 7)
		if err != nil || !bytes.Equal(again, data) || !bytes.Equal(atr, tr) {
			t.Fatalf("re-framed %q: %q %q %v", in, again, atr, err)
		}
	})
}
