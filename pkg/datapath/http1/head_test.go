package http1

import (
	"strings"
	"testing"
)

func parseReq(t *testing.T, raw string) (*Head, error) {
	t.Helper()
	var h Head
	n, err := h.ParseRequest([]byte(raw), DefaultLimits)
	if err == nil && n == 0 {
		t.Fatalf("%q: incomplete; want a whole head", raw)
	}
	return &h, err
}

func TestRequest(t *testing.T) {
	raw := "POST /a?b=c HTTP/1.1\r\nhost: example.com\r\nX-Api-key:  v 1 \r\nContent-Length: 5\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\nhello"
	h, err := parseReq(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(raw)
	for _, c := range []struct{ name, got, want string }{
		{"method", string(h.Method.Of(b)), "POST"},
		{"target", string(h.Target.Of(b)), "/a?b=c"},
		{"host", string(h.Host.Of(b)), "example.com"},
		{"first name, as spelled", string(h.Fields[1].Name.Of(b)), "X-Api-key"},
		{"value, trimmed", string(h.Fields[1].Value.Of(b)), "v 1"},
		{"body", string(b[h.Len:]), "hello"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q; want %q", c.name, c.got, c.want)
		}
	}
	if h.Minor != 1 || h.Length != 5 || h.Chunked || h.Close || !h.Upgrade || h.Expect != ExpectContinue {
		t.Errorf("minor %d length %d chunked %v close %v upgrade %v expect %d; want 1 5 false false true 1",
			h.Minor, h.Length, h.Chunked, h.Close, h.Upgrade, h.Expect)
	}
	if v, ok := h.Field(b, "x-api-key"); !ok || string(v) != "v 1" {
		t.Errorf("Field(x-api-key) = %q, %v; want \"v 1\", true", v, ok)
	}
}

func TestFraming(t *testing.T) {
	for _, c := range []struct {
		name, head string
		length     int64
		chunked    bool
		close      bool
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, false},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", -1, true, false},
		{"1.0 closes", "GET / HTTP/1.0\r\n\r\n", 0, false, true},
		{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, false, false},
		{"1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", 0, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := parseReq(t, c.head)
			if err != nil {
				t.Fatal(err)
			}
			if h.Length != c.length || h.Chunked != c.chunked || h.Close != c.close {
				t.Errorf("length %d chunked %v close %v; want %d %v %v", h.Length, h.Chunked, h.Close, c.length, c.chunked, c.close)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	long := strings.Repeat("a", 9000)
	for _, c := range []struct {
		name, head string
		status     int
	}{
		{"bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
		{"bare LF ending", "GET / HTTP/1.1\r\nHost: a\n\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
		{"CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
		{"control in a name", "GET / HTTP/1.1\r\nHost: a\r\nX\x01: a\r\n\r\n", 400},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"negative length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"overflowing length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
		{"gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"two encodings", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"chunked in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 505},
		{"not HTTP", "GET / FTP/1.0\r\n\r\n", 400},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"control in the target", "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"long target", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
		{"long head", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat(long, 8) + "\r\n\r\n", 431},
		{"many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 100) + "\r\n", 431},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h Head
			_, err := h.ParseRequest([]byte(c.head), DefaultLimits)
			e, ok := err.(*Error)
			if !ok || e.Status != c.status {
				t.Errorf("%q: %v; want a %d", c.head, err, c.status)
			}
		})
	}
}

// A head in pieces: incomplete until its last byte, then the same head as
// in one piece; the search for its end is not restarted each time.
func TestPieces(t *testing.T) {
	raw := []byte("GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\nbody")
	var h Head
	for i := 1; i < len(raw)-4; i++ {
		if n, err := h.ParseRequest(raw[:i], DefaultLimits); n != 0 || err != nil {
			t.Fatalf("%q: %d, %v; want incomplete", raw[:i], n, err)
		}
	}
	if n, err := h.ParseRequest(raw, DefaultLimits); n != len(raw)-4 || err != nil {
		t.Fatalf("whole: %d, %v; want %d, nil", n, err, len(raw)-4)
	}
	if h.scanned != len(raw)-4 {
		t.Errorf("scanned %d; want %d", h.scanned, len(raw)-4)
	}
	if string(h.Target.Of(raw)) != "/x" || len(h.Fields) != 2 {
		t.Errorf("target %q, %d fields; want /x, 2", h.Target.Of(raw), len(h.Fields))
	}
	h.Reset()
	if n, _ := h.ParseRequest(raw, DefaultLimits); n != len(raw)-4 || len(h.Fields) != 2 {
		t.Errorf("after Reset: %d, %d fields; want %d, 2", n, len(h.Fields), len(raw)-4)
	}
}

func TestResponse(t *testing.T) {
	for _, c := range []struct {
		name, head string
		head4req   bool
		status     int
		length     int64
		chunked    bool
		close      bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false, 200, 3, false, false},
		{"same length twice", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", false, 200, 3, false, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 200, -1, true, false},
		{"to the close", "HTTP/1.0 200 OK\r\n\r\n", false, 200, -1, false, true},
		{"no reason", "HTTP/1.1 204\r\n\r\n", false, 204, 0, false, false},
		{"304 announces a length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, 304, 0, false, false},
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, 200, 0, false, false},
		{"100", "HTTP/1.1 100 Continue\r\n\r\n", false, 100, 0, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h Head
			n, err := h.ParseResponse([]byte(c.head), DefaultLimits, c.head4req)
			if err != nil || n != len(c.head) {
				t.Fatalf("%d, %v", n, err)
			}
			if h.Status != c.status || h.Length != c.length || h.Chunked != c.chunked || h.Close != c.close {
				t.Errorf("status %d length %d chunked %v close %v; want %d %d %v %v", h.Status, h.Length, h.Chunked, h.Close, c.status, c.length, c.chunked, c.close)
			}
		})
	}
	for _, bad := range []string{"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "ICY 200 OK\r\n\r\n", "HTTP/1.1 200 O\x01K\r\n\r\n"} {
		var h Head
		if _, err := h.ParseResponse([]byte(bad), DefaultLimits, false); err == nil {
			t.Errorf("%q: accepted; want an error", bad)
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	raw := []byte("GET /index.html HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\nX-Request-Id: 3f1c2a\r\n\r\n")
	var h Head
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		h.Reset()
		if n, err := h.ParseRequest(raw, DefaultLimits); n == 0 || err != nil {
			b.Fatal(n, err)
		}
	}
}
