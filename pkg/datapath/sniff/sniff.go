// Package sniff tells an HTTP connection from any other TCP connection by its
// first bytes, without ever stalling a protocol in which the server speaks
// first (MySQL, SMTP, SSH).
//
// The agent waits briefly for the client, then connects to the app and waits
// for whichever side speaks: bytes from the app first mean a server-first
// protocol, forwarded as opaque TCP at once; bytes from the client are
// classified as soon as they decide (pkg/datapath/proxy's sniff steps).
// Istio waits for the client alone (its protocol sniffing is why server-first
// protocols stall behind it until a timeout); Linkerd waits up to 10s. Here
// the timeout only matters when neither side says anything, and even then the
// connection is forwarded as TCP, so it is never lost.
//
//	if p, decided := sniff.Decide(firstBytes); decided && p == sniff.HTTP1 { ... }
package sniff

import (
	"bytes"
)

// MaxPeek bounds what is read from the client before deciding; every
// recognised request line decides within far fewer bytes.
const MaxPeek = 4096

// Proto is what a connection's first bytes say it carries.
type Proto int

const (
	TCP   Proto = iota // anything else: forwarded opaque
	HTTP1              // an HTTP/1.x request line
	HTTP2              // the HTTP/2 prior-knowledge preface (h2c, as gRPC uses)
)

func (p Proto) String() string {
	return [...]string{"tcp", "http/1", "h2c"}[p]
}

// Preface is the HTTP/2 client connection preface.
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// methods are the request methods recognised on the request line. Any other
// method is forwarded as TCP: correct, only undecorated.
var methods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// Verdict is Classify's answer.
type Verdict int

const (
	NeedMore Verdict = iota // b is a prefix of something HTTP: read more
	IsHTTP1
	IsHTTP2
	NotHTTP
)

// Classify decides what the client's first bytes b are.
func Classify(b []byte) Verdict {
	if len(b) == 0 {
		return NeedMore
	}
	if bytes.HasPrefix(b, []byte(Preface)) {
		return IsHTTP2
	}
	if len(b) < len(Preface) && bytes.HasPrefix([]byte(Preface), b) {
		return NeedMore
	}
	more := false
	for _, m := range methods {
		word := m + " "
		switch {
		case bytes.HasPrefix(b, []byte(word)):
			// "GET " and then a request-target: an HTTP/1 request line.
			return IsHTTP1
		case len(b) < len(word) && bytes.HasPrefix([]byte(word), b):
			more = true
		}
	}
	if more {
		return NeedMore
	}
	return NotHTTP
}

// Decide is what Classify's verdict on a client's first bytes b means, and
// whether it is final: MaxPeek bytes that are still undecided are TCP.
func Decide(b []byte) (Proto, bool) {
	switch Classify(b) {
	case IsHTTP1:
		return HTTP1, true
	case IsHTTP2:
		return HTTP2, true
	case NotHTTP:
		return TCP, true
	}
	return TCP, len(b) >= MaxPeek
}
