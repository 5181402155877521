package http1

import (
	"strings"
	"testing"
)

func parsed(t *testing.T, raw string) (*Head, []byte) {
	t.Helper()
	var h Head
	buf := []byte(raw)
	if n, err := h.ParseRequest(buf, DefaultLimits); err != nil || n != len(buf) {
		t.Fatalf("ParseRequest(%q) = %d, %v", raw, n, err)
	}
	return &h, buf
}

// The header view reads and changes a parsed head's fields and writes them
// out: the originals as spelled and in order, less the deleted, then the
// added, in canonical form.
func TestHeaderEdits(t *testing.T) {
	h, buf := parsed(t, "GET / HTTP/1.1\r\nHost: a\r\nx-TRACE: 1\r\nAccept: */*\r\nx-trace: 2\r\n\r\n")
	var hd Header
	hd.Reset(buf, h.Fields)
	if got := hd.Get("X-Trace"); got != "1" {
		t.Errorf("Get = %q; want the first value, 1", got)
	}
	if got := hd.Values("x-trace"); len(got) != 2 || got[1] != "2" {
		t.Errorf("Values = %q", got)
	}
	hd.Set("x-request-id", "r1")
	hd.Add("X-Forwarded-For", "192.0.2.1")
	hd.Del("X-TRACE")
	if hd.Has("x-trace") || hd.Get("X-Request-Id") != "r1" {
		t.Errorf("after Del and Set: has x-trace %v, X-Request-Id %q", hd.Has("x-trace"), hd.Get("X-Request-Id"))
	}
	hd.Set("X-Forwarded-For", "192.0.2.2")
	out := string(hd.AppendFields(nil, func(name []byte) bool { return FoldEqual(name, "accept") }))
	if want := "Host: a\r\nX-Request-Id: r1\r\nX-Forwarded-For: 192.0.2.2\r\n"; out != want {
		t.Errorf("AppendFields = %q; want %q", out, want)
	}
	var ranged []string
	hd.Range(func(name, value string) bool { ranged = append(ranged, name+"="+value); return true })
	if got, want := strings.Join(ranged, " "), "Host=a Accept=*/* X-Request-Id=r1 X-Forwarded-For=192.0.2.2"; got != want {
		t.Errorf("Range = %s; want %s", got, want)
	}
	ranged = ranged[:0]
	hd.Range(func(name, value string) bool { ranged = append(ranged, name); return len(ranged) < 2 })
	if len(ranged) != 2 {
		t.Errorf("Range went on after f returned false: %q", ranged)
	}
	hd.Reset(buf, h.Fields)
	if !hd.Has("accept") || hd.Has("x-request-id") {
		t.Error("Reset kept the edits of the last message")
	}
}

// A Connection field's tokens name fields of the connection (but close and
// keep-alive, which are options): those and the fixed hop-by-hop ones are
// not passed on.
func TestNominatedAndRewritten(t *testing.T) {
	h, buf := parsed(t, "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop ,x-other\r\nConnection: close\r\n\r\n")
	var names []string
	for _, s := range h.Nominated(buf, nil) {
		names = append(names, string(s.Of(buf)))
	}
	if got := strings.Join(names, "|"); got != "X-Hop|x-other" {
		t.Errorf("Nominated = %q; want X-Hop|x-other", got)
	}
	for name, want := range map[string]bool{"Connection": true, "keep-alive": true, "TE": true, "Transfer-Encoding": true,
		"Upgrade": true, "Proxy-Connection": true, "Proxy-Authorization": true, "Content-Length": false, "Trailer": false, "Host": false} {
		if got := Rewritten([]byte(name)); got != want {
			t.Errorf("Rewritten(%s) = %v; want %v", name, got, want)
		}
	}
}
