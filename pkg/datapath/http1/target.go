package http1

import "bytes"

// What the agent makes of a request target that is not a path (RFC 9112
// §3.2): the parser tells the form, these read what the session needs.

// SplitAbsolute reads an absolute-form target (a proxy's request,
// "http://host:port/path?query") as the last hop before an origin server
// must send it on: the authority, which stands for the Host field (RFC
// 9112 §3.2.2), and the origin-form rest, its path and query. rest is
// empty, or starts with '?', when the URL has no path: the caller sends
// "/" before it. Only http and https URLs with a host are taken.
func SplitAbsolute(t []byte) (authority, rest []byte, err *Error) {
	colon := bytes.IndexByte(t, ':')
	if colon < 0 || !equalFold(t[:colon], "http") && !equalFold(t[:colon], "https") {
		return nil, nil, fail(400, "the request target is a URL of a scheme other than http")
	}
	after, ok := bytes.CutPrefix(t[colon+1:], []byte("//"))
	if !ok {
		return nil, nil, fail(400, "the request target's URL has no host")
	}
	end := bytes.IndexAny(after, "/?")
	if end < 0 {
		end = len(after)
	}
	authority, rest = after[:end], after[end:]
	switch {
	case bytes.IndexByte(authority, '@') >= 0:
		return nil, nil, fail(400, "the request target's URL has user information")
	case len(authority) == 0 || !validHost(authority):
		return nil, nil, fail(400, "the request target's URL has no valid host")
	}
	return authority, rest, nil
}

// ValidAuthority says whether t is an authority-form target, a CONNECT's
// (RFC 9112 §3.2.3): a host and a port.
func ValidAuthority(t []byte) bool {
	colon := bytes.LastIndexByte(t, ':')
	if colon <= 0 || colon == len(t)-1 || !validHost(t) {
		return false
	}
	for _, c := range t[colon+1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
