package forwarded

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestAdd(t *testing.T) {
	h := http.Header{}
	Add(h, netip.MustParseAddr("10.0.0.7"))
	if h.Get("X-Forwarded-For") != "10.0.0.7" || h.Get("X-Forwarded-Proto") != "http" || h.Get("Forwarded") != "for=10.0.0.7;proto=http" {
		t.Errorf("headers = %v", h)
	}
	h = http.Header{"X-Forwarded-For": {"203.0.113.1"}, "X-Forwarded-Proto": {"https"}}
	Add(h, netip.MustParseAddr("fd00::7"))
	if h.Get("X-Forwarded-For") != "203.0.113.1, fd00::7" || h.Get("X-Forwarded-Proto") != "https" || h.Get("Forwarded") != `for="[fd00::7]";proto=http` {
		t.Errorf("with a prior hop: headers = %v", h)
	}
}
