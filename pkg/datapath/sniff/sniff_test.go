package sniff

import (
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Verdict
	}{
		{"", NeedMore},
		{"G", NeedMore},
		{"GE", NeedMore},
		{"GET", NeedMore},
		{"GET /", IsHTTP1},
		{"POST /upload HTTP/1.1\r\n", IsHTTP1},
		{"DELETE /x HTTP/1.0\r\n", IsHTTP1},
		{"P", NeedMore}, // POST, PUT, PATCH or the h2 preface
		{"PRI * HTTP/2.0\r\n", NeedMore},
		{Preface, IsHTTP2},
		{Preface + "\x00\x00\x12\x04", IsHTTP2},
		{"PRI * HTTP/1.1\r\n", NotHTTP},
		{"get / HTTP/1.1\r\n", NotHTTP}, // methods are case-sensitive
		{"GETX / HTTP/1.1", NotHTTP},
		{"\x16\x03\x01\x02\x00", NotHTTP}, // a TLS ClientHello
		{"*3\r\n$3\r\nSET\r\n", NotHTTP},  // Redis
		{"\x00\x00\x00\x08\x04\xd2\x16\x2f", NotHTTP},
	} {
		if got := Classify([]byte(tc.in)); got != tc.want {
			t.Errorf("Classify(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Proto
		decided bool
	}{
		{"", TCP, false},
		{"GE", TCP, false},
		{"GET / HTTP/1.1\r\n", HTTP1, true},
		{Preface, HTTP2, true},
		{"SSH-2.0-OpenSSH\r\n", TCP, true},
		{"PRI * HTTP/2.0", TCP, false},
	} {
		if got, decided := Decide([]byte(tc.in)); got != tc.want || decided != tc.decided {
			t.Errorf("Decide(%q) = %v, %v; want %v, %v", tc.in, got, decided, tc.want, tc.decided)
		}
	}
}
