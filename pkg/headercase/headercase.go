// Package headercase keeps HTTP/1 header names spelled as the client (or the
// app) wrote them. Go's net/http, like Envoy, canonicalizes names on the way
// in ("x-api-key" becomes "X-Api-Key"); header names are case-insensitive,
// but some apps and clients compare them byte for byte, and users of Envoy
// complain when a proxy changes them.
//
// Names learns the spellings from the raw bytes of a connection: whenever a
// read begins an HTTP/1 message (a request line or a status line), the names
// in that chunk's header block that are not canonical are recorded. Restore
// then re-keys a header map to those spellings before it is written out.
//
//	names.Learn(chunk)       // on every read from the connection
//	names.Restore(out.Header) // before forwarding
//
// A read that does not begin a message is not scanned, so bodies cost one
// prefix check per read. A spelling that is missed is sent canonical:
// semantics never change, only the case.
package headercase

import (
	"bytes"
	"net/http"
	"net/textproto"
	"sync"
)

// maxNames bounds the spellings kept per connection.
const maxNames = 64

// Names are the non-canonical spellings seen on one connection.
type Names struct {
	mu        sync.Mutex
	m         map[string]string // canonical -> as written
	inHead    bool              // inside a header block that began in an earlier read
	startLine bool              // the next line is the request or status line
	partial   []byte            // an unfinished line from the last read
}

var methods = [][]byte{[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("DELETE "), []byte("HEAD "),
	[]byte("PATCH "), []byte("OPTIONS "), []byte("CONNECT "), []byte("TRACE "), []byte("HTTP/1.")}

func startsMessage(b []byte) bool {
	for _, m := range methods {
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	return false
}

// Learn records the spellings in b, the next bytes read from the
// connection. A header block may span reads: Learn carries the unfinished
// line over (up to maxLine) until the block ends.
func (n *Names) Learn(b []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.inHead {
		if !startsMessage(b) {
			return
		}
		n.inHead, n.startLine, n.partial = true, true, n.partial[:0]
	}
	for len(b) > 0 {
		end := bytes.IndexByte(b, '\n')
		if end < 0 {
			if len(n.partial)+len(b) <= maxLine {
				n.partial = append(n.partial, b...)
			}
			return
		}
		line := b[:end]
		if len(n.partial) > 0 {
			line = append(n.partial, line...)
			n.partial = n.partial[:0]
		}
		b = b[end+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if n.startLine {
			n.startLine = false
			continue
		}
		if len(line) == 0 {
			n.inHead = false // the body follows; the next message is looked for at a read's start
			return
		}
		n.record(line)
	}
}

// maxLine bounds the unfinished line carried between reads.
const maxLine = 8 << 10

func (n *Names) record(line []byte) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return
	}
	name := string(line[:colon])
	canon := textproto.CanonicalMIMEHeaderKey(name)
	if canon == name {
		return
	}
	if n.m == nil {
		n.m = map[string]string{}
	}
	if _, ok := n.m[canon]; ok || len(n.m) < maxNames {
		n.m[canon] = name
	}
}

// Restore re-keys h to the spellings learned.
func (n *Names) Restore(h http.Header) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.m) == 0 {
		return
	}
	for canon, name := range n.m {
		v, ok := h[canon]
		if !ok {
			continue
		}
		if _, taken := h[name]; taken {
			continue
		}
		delete(h, canon)
		h[name] = v
	}
}
