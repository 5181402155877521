package rawhead

import (
	"net/http"
	"net/textproto"
	"testing"
)

func TestLearnRestore(t *testing.T) {
	var n Head
	n.Learn([]byte("GET / HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\nCONTENT-type: text/plain\r\nX-Normal: 1\r\n\r\nbody: not a header\r\n"))
	h := http.Header{"X-Api-Key": {"k"}, "Content-Type": {"text/plain"}, "X-Normal": {"1"}, "Body": {"added later"}}
	n.Restore(h)
	for _, k := range []string{"x-api-key", "CONTENT-type", "X-Normal", "Body"} {
		if _, ok := h[k]; !ok {
			t.Errorf("restored header lacks %q: %v", k, h)
		}
	}
	if len(h) != 4 {
		t.Errorf("restored header has %d keys; want 4: %v", len(h), h)
	}
}

func TestLearnIgnoresBodies(t *testing.T) {
	var n Head
	n.Learn([]byte("{\"json\": true}\r\nx-fake: 1\r\n\r\n"))
	n.Learn([]byte("HTTP/1.0 200 OK\r\nserver: SimpleHTTP\r\n"))
	h := http.Header{"X-Fake": {"1"}, "Server": {"SimpleHTTP"}}
	n.Restore(h)
	if _, ok := h["x-fake"]; ok {
		t.Error("a body line was learned as a header")
	}
	if _, ok := h["server"]; !ok {
		t.Errorf("a status line's header was not learned: %v", h)
	}
}

func TestBounded(t *testing.T) {
	var n Head
	msg := []byte("GET / HTTP/1.1\r\n")
	for i := 0; i < 200; i++ {
		msg = append(msg, []byte("x-h"+string(rune('a'+i%26))+string(rune('a'+i/26))+": v\r\n")...)
	}
	n.Learn(msg)
	if len(n.m) > maxNames {
		t.Errorf("%d spellings kept; want at most %d", len(n.m), maxNames)
	}
}

// Regression: net/http's server first reads just enough to look for the
// HTTP/2 preface, so a header block arrives over several reads.
func TestLearnAcrossReads(t *testing.T) {
	var n Head
	msg := "GET / HTTP/1.1\r\nHost: app\r\nx-api-key: secret\r\nX-MiXeD-Case: 1\r\n\r\n"
	for _, cut := range [][2]int{{0, 24}, {24, 33}, {33, len(msg)}} {
		n.Learn([]byte(msg[cut[0]:cut[1]]))
	}
	h := http.Header{"X-Api-Key": {"secret"}, "X-Mixed-Case": {"1"}}
	n.Restore(h)
	if _, ok := h["x-api-key"]; !ok {
		t.Errorf("x-api-key not restored: %v", h)
	}
	if _, ok := h["X-MiXeD-Case"]; !ok {
		t.Errorf("X-MiXeD-Case not restored: %v", h)
	}
	// After the block, body bytes are not scanned.
	n.Learn([]byte("x-body: 1\r\n"))
	if _, ok := n.m["X-Body"]; ok {
		t.Error("a body line after the header block was learned")
	}
}

func TestViolations(t *testing.T) {
	for _, tc := range []struct{ head, want string }{
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n", ""},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", "both Content-Length and Transfer-Encoding"},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\ncontent-length: 4\r\n\r\n", "both Content-Length and Transfer-Encoding"},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", "Content-Length given more than once"},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", "obsolete line folding"},
		{"GET / HTTP/1.1\nHost: x\n\n", "a line ends with a bare LF, not CRLF"},
		{"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", "a line ends with a bare LF, not CRLF"},
	} {
		var h Head
		// Byte by byte, as a slowloris client would send it.
		for i := range tc.head {
			h.Learn([]byte(tc.head[i : i+1]))
		}
		if got := h.Violation(); got != tc.want {
			t.Errorf("Violation(%q) = %q; want %q", tc.head, got, tc.want)
		}
		// The next message starts clean.
		h.Learn([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		if got := h.Violation(); got != "" {
			t.Errorf("after %q, a clean head has violation %q", tc.head, got)
		}
	}
}

// The fast path's test of a spelling must never claim a name canonical
// that net/http would respell, or that spelling would be lost (or a framing
// header missed). The other way round is only slower: the full path.
func TestCanonicalAgreesWithTextproto(t *testing.T) {
	for _, name := range []string{"Host", "host", "HOST", "Content-Length", "content-length", "Content-length",
		"X-B3-Traceid", "x-b3-traceid", "X-Request-Id", "X-Request-ID", "X_Under", "x_under", "A", "a", "-", "--x",
		"X Space", "x space", "Te", "TE", "Ümlaut", "X-1a", "X-1A", "Accept-Encoding"} {
		if canonical([]byte(name)) && textproto.CanonicalMIMEHeaderKey(name) != name {
			t.Errorf("canonical(%q) = true; textproto respells it %q", name, textproto.CanonicalMIMEHeaderKey(name))
		}
	}
	for _, name := range []string{"Host", "Content-Length", "Transfer-Encoding", "X-B3-Traceid", "User-Agent"} {
		if !canonical([]byte(name)) {
			t.Errorf("canonical(%q) = false: the common case takes the slow path", name)
		}
	}
}
