// Package rawhead reads what the raw bytes of an HTTP/1 message head say
// and net/http forgets or forgives:
//
//   - the spelling of header names. Go's net/http, like Envoy, canonicalizes
//     them ("x-api-key" becomes "X-Api-Key"); names are case-insensitive,
//     but some apps and clients compare them byte for byte, and Envoy's users
//     complain when a proxy changes them. Restore re-keys a header map to the
//     spellings seen.
//   - framing that request smuggling relies on and net/http accepts: a bare
//     LF line ending, obsolete line folding, Content-Length given twice, or
//     given with Transfer-Encoding. Violation reports it, and the agent
//     answers 400 without forwarding anything.
//
// A Head learns from every read of one connection; a read that begins a
// message (a request or status line) starts a new head, which may span
// reads. Reads that do not begin a message are not scanned, so a body costs
// one prefix check per read. A spelling that is missed is sent canonical:
// semantics never change, only the case.
//
//	head.Learn(chunk)          // on every read from the connection
//	if v := head.Violation(); v != "" { ... 400 ... }
//	head.Restore(out.Header)   // before forwarding
package rawhead

import (
	"bytes"
	"net/http"
	"net/textproto"
	"sync"
)

// Limits on what one connection keeps.
const (
	maxNames = 64      // spellings kept
	maxLine  = 8 << 10 // an unfinished line carried between reads
)

// Head is what the heads read on one connection said.
type Head struct {
	mu        sync.Mutex
	m         map[string]string // canonical -> as written
	inHead    bool              // inside a head that began in an earlier read
	startLine bool              // the next line is the request or status line
	partial   []byte            // an unfinished line from the last read
	pending   []byte            // a read that may be the start of a message, too short to tell
	contentLn int               // Content-Length headers in the current head
	transEnc  bool              // Transfer-Encoding in the current head
	violation string            // the current head's first framing violation
}

var starts = [][]byte{[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("DELETE "), []byte("HEAD "),
	[]byte("PATCH "), []byte("OPTIONS "), []byte("CONNECT "), []byte("TRACE "), []byte("HTTP/1.")}

func startsMessage(b []byte) bool {
	for _, s := range starts {
		if bytes.HasPrefix(b, s) {
			return true
		}
	}
	return false
}

// maybeStart reports whether b could grow into the start of a message.
func maybeStart(b []byte) bool {
	for _, s := range starts {
		if len(b) < len(s) && bytes.HasPrefix(s, b) {
			return true
		}
	}
	return false
}

// Learn reads b, the next bytes read from the connection.
func (h *Head) Learn(b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.inHead {
		if len(h.pending) > 0 {
			b = append(h.pending, b...)
			h.pending = nil
		}
		if !startsMessage(b) {
			if len(b) < 8 && maybeStart(b) {
				h.pending = append([]byte(nil), b...) // a client sending byte by byte
			}
			return
		}
		h.inHead, h.startLine, h.partial = true, true, h.partial[:0]
		h.contentLn, h.transEnc, h.violation = 0, false, ""
	}
	for len(b) > 0 {
		end := bytes.IndexByte(b, '\n')
		if end < 0 {
			if len(h.partial)+len(b) <= maxLine {
				h.partial = append(h.partial, b...)
			}
			return
		}
		line := b[:end]
		if len(h.partial) > 0 {
			line = append(h.partial, line...)
			h.partial = h.partial[:0]
		}
		b = b[end+1:]
		if !bytes.HasSuffix(line, []byte("\r")) {
			h.violate("a line ends with a bare LF, not CRLF")
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if h.startLine {
			h.startLine = false
			continue
		}
		if len(line) == 0 {
			h.inHead = false // the body follows; the next head is looked for at a read's start
			if h.contentLn > 0 && h.transEnc {
				h.violate("both Content-Length and Transfer-Encoding")
			}
			return
		}
		h.field(line)
	}
}

func (h *Head) violate(why string) {
	if h.violation == "" {
		h.violation = why
	}
}

func (h *Head) field(line []byte) {
	if line[0] == ' ' || line[0] == '\t' {
		h.violate("obsolete line folding")
		return
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return // net/http rejects it
	}
	raw := line[:colon]
	if canonical(raw) { // the common case: nothing to learn, no string kept
		h.framing(string(raw))
		return
	}
	name := string(raw)
	canon := textproto.CanonicalMIMEHeaderKey(name)
	h.framing(canon)
	if canon == name {
		return
	}
	if h.m == nil {
		h.m = map[string]string{}
	}
	if _, ok := h.m[canon]; ok || len(h.m) < maxNames {
		h.m[canon] = name
	}
}

// framing counts the framing headers of the current head.
func (h *Head) framing(canon string) {
	switch canon {
	case "Content-Length":
		if h.contentLn++; h.contentLn > 1 {
			h.violate("Content-Length given more than once")
		}
	case "Transfer-Encoding":
		h.transEnc = true
	}
}

// canonical reports whether name is spelled as net/http canonicalizes it:
// upper case at the start and after each hyphen, lower case elsewhere.
func canonical(name []byte) bool {
	upper := true
	for _, c := range name {
		switch {
		case 'a' <= c && c <= 'z' && upper, 'A' <= c && c <= 'Z' && !upper:
			return false
		}
		upper = c == '-'
	}
	return true
}

// Violation is the framing violation of the last head read, or "".
func (h *Head) Violation() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.violation
}

// Restore re-keys hdr to the spellings learned.
func (h *Head) Restore(hdr http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rekey(hdr)
}

// Spelled is hdr re-keyed to the spellings learned: hdr itself when none of
// its names was spelled otherwise (the common case, at no cost), else a
// re-keyed copy, so that whoever reads hdr by canonical name later still
// finds every value.
func (h *Head) Spelled(hdr http.Header) http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	for canon := range h.m {
		if _, ok := hdr[canon]; ok {
			out := hdr.Clone()
			h.rekey(out)
			return out
		}
	}
	return hdr
}

func (h *Head) rekey(hdr http.Header) {
	for canon, name := range h.m {
		v, ok := hdr[canon]
		if !ok {
			continue
		}
		if _, taken := hdr[name]; taken {
			continue
		}
		delete(hdr, canon)
		hdr[name] = v
	}
}
