package http1

import (
	"bytes"
	"strings"
	"testing"
)

// decode runs a whole body through c in pieces of size n and returns the
// data and the trailers.
func decode(body []byte, n int) (data, trailers []byte, rest []byte, err error) {
	var c Chunked
	for !c.Done() && len(body) > 0 {
		piece := body[:min(n, len(body))]
		skip, d, err := c.Next(piece)
		if err != nil {
			return nil, nil, nil, err
		}
		data = append(data, piece[skip:skip+d]...)
		body = body[skip+d:]
	}
	if !c.Done() {
		return data, nil, nil, errIncomplete
	}
	return data, append([]byte(nil), c.Trailers()...), body, nil
}

var errIncomplete = &Error{Why: "incomplete"}

func TestChunked(t *testing.T) {
	body := []byte("5\r\nhello\r\n1;ext=\"a b\"\r\n \r\nA \r\n0123456789\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\nNEXT")
	for _, n := range []int{1, 2, 3, 7, len(body)} {
		data, tr, rest, err := decode(body, n)
		if err != nil {
			t.Fatalf("pieces of %d: %v", n, err)
		}
		if string(data) != "hello 0123456789" || string(tr) != "X-Sum: 1\r\nY: 2\r\n" || string(rest) != "NEXT" {
			t.Errorf("pieces of %d: data %q trailers %q rest %q", n, data, tr, rest)
		}
	}
}

func TestChunkedRefused(t *testing.T) {
	for _, c := range []struct{ name, body string }{
		{"not hex", "g\r\n"},
		{"no size", "\r\n"},
		{"overflow", "1000000000000000\r\n"},
		{"bare LF after the size", "3\nabc\r\n0\r\n\r\n"},
		{"data longer than its size", "3\r\nabcd\r\n0\r\n\r\n"},
		{"bare LF after the data", "3\r\nabc\n0\r\n\r\n"},
		{"control in an extension", "3;\x00\r\nabc\r\n0\r\n\r\n"},
		{"bad trailer", "0\r\nX : 1\r\n\r\n"},
		{"obs-fold trailer", "0\r\nX: 1\r\n 2\r\n\r\n"},
		{"huge size line", "1;" + strings.Repeat("a", 5000) + "\r\n"},
		{"sign", "+3\r\nabc\r\n0\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, _, _, err := decode([]byte(c.body), 1); err == nil || err == errIncomplete {
				t.Errorf("%q: %v; want refused", c.body, err)
			}
		})
	}
}

func TestAppendChunk(t *testing.T) {
	var out []byte
	out = AppendChunk(out, []byte("hello world, again"))
	out = AppendChunk(out, nil)
	out = AppendLast(out, []byte("X: 1\r\n"))
	data, tr, _, err := decode(out, 4)
	if err != nil || string(data) != "hello world, again" || !bytes.Equal(tr, []byte("X: 1\r\n")) {
		t.Errorf("%q decoded: %q %q %v", out, data, tr, err)
	}
}
