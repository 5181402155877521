// Package http1 is the HTTP/1.0 and 1.1 wire format as the agent's event
// loop reads it: a message head parsed in place over a connection's buffer
// (fields are views into it, nothing is copied or allocated), the framing
// of the body it announces, and a streaming decoder of chunked bodies.
//
// It is strict where request smuggling lives (RFC 9112 §11.2): a bare LF,
// obsolete line folding, whitespace before a colon, a control byte in a
// name or value, Content-Length twice or with Transfer-Encoding, a
// transfer coding other than chunked alone, an overflowing length are each
// an *Error with the status the agent answers (400, 414, 431, 501, 505),
// and nothing of that message is forwarded. What net/http accepts and this
// refuses is listed in Stricter.
//
//	var h http1.Head
//	for {
//		n, err := h.ParseRequest(buf, http1.DefaultLimits) // again as more of the head arrives
//		if err != nil { answer err.(*http1.Error).Status; close }
//		if n > 0 { break }  // buf[:n] is the head; the body follows
//		read more into buf
//	}
//	h.Method.Of(buf), h.Target.Of(buf), h.Field("host"), h.Length, h.Chunked, h.Close
package http1

import (
	"bytes"
	"strconv"
)

// Span is a view into the buffer a head was parsed from.
type Span struct{ Off, End int32 }

// Of is the bytes of s in buf.
func (s Span) Of(buf []byte) []byte { return buf[s.Off:s.End] }

// Len is the length of s.
func (s Span) Len() int { return int(s.End - s.Off) }

// Field is one header field: its name as it was spelled, and its value
// without the whitespace around it.
type Field struct{ Name, Value Span }

// Form is the form of a request target (RFC 9112 §3.2).
type Form uint8

const (
	Origin    Form = iota // /path?query: what the loop serves
	Asterisk              // *, for OPTIONS
	Absolute              // scheme://host/path: a proxy's request, passed on to net/http
	Authority             // host:port, for CONNECT: passed on to net/http
)

// Expectation is what a request's Expect field asks for.
type Expectation uint8

const (
	ExpectNothing  Expectation = iota
	ExpectContinue             // 100-continue
	ExpectOther                // anything else: the agent answers 417
)

// Head is a parsed request or response head. Every Span is into the buffer
// given to the parse; a Head is reused for the next message with Reset.
type Head struct {
	// The start line. Method and Target for a request; Status and Reason
	// for a response.
	Method, Target Span
	Form           Form
	Status         int
	Reason         Span
	Minor          int // HTTP/1.Minor: 0 or 1

	// Fields in the order they came, names as spelled.
	Fields []Field
	// Len is the head's length through the empty line: the body starts at
	// buf[Len]. 0 while the head is incomplete.
	Len int

	// The framing of the body, from the fields.
	Length  int64 // Content-Length; -1 when none (then Chunked, or to the close for a response)
	Chunked bool  // Transfer-Encoding: chunked
	Close   bool  // the connection ends after this message (Connection: close, or 1.0 without keep-alive)
	// Upgrade: an Upgrade field with "upgrade" among Connection's tokens.
	Upgrade bool
	Expect  Expectation
	Host    Span // a request's Host field; zero when there is none

	scanned int // how far the search for the head's end got
}

// Limits bound a head.
type Limits struct {
	Head   int // bytes through the empty line; over it, 431
	Target int // bytes of the request target; over it, 414
	Fields int // header fields; over them, 431
}

// DefaultLimits are the agent's, for HTTP/1 and HTTP/2 alike: a 64 KiB
// head (net/http's MaxHeaderBytes as the agent sets it for HTTP/2), an
// 8 KiB target, 100 fields (HAProxy's 101).
var DefaultLimits = Limits{Head: MaxHead, Target: 8 << 10, Fields: 100}

// MaxHead is DefaultLimits' bound on a head, as a constant for the sizes
// of buffers.
const MaxHead = 64 << 10

// Error is a message the agent refuses, with the status it answers.
type Error struct {
	Status int
	Why    string // what was wrong, for the log and the response body
}

func (e *Error) Error() string { return "malformed HTTP/1 message: " + e.Why }

func fail(status int, why string) *Error { return &Error{Status: status, Why: why} }

// Reset makes h ready for the next message.
func (h *Head) Reset() {
	fields := h.Fields[:0]
	*h = Head{Fields: fields}
}

// ParseRequest parses the request head at the start of buf. It returns the
// head's length once buf holds all of it, 0 (and no error) while it does
// not, and an *Error for a head to refuse. Call it again with the same buf
// grown by what was read since: the search for the end resumes where it
// stopped, so a head arriving a byte at a time costs no more than one.
func (h *Head) ParseRequest(buf []byte, lim Limits) (int, error) {
	return h.parseHead(buf, lim, true, false)
}

// ParseResponse is ParseRequest for a response; head: the request was a
// HEAD (its response has no body, whatever its fields announce, as 1xx,
// 204 and 304 have none).
func (h *Head) ParseResponse(buf []byte, lim Limits, head bool) (int, error) {
	return h.parseHead(buf, lim, false, head)
}

func (h *Head) parseHead(buf []byte, lim Limits, request, head bool) (int, error) {
	end, err := h.end(buf, lim)
	if end == 0 || err != nil {
		return 0, err
	}
	if err := h.parse(buf[:end], lim, request, head); err != nil {
		return 0, err
	}
	return end, nil
}

// end finds the end of the head: the byte after its empty line, or 0.
func (h *Head) end(buf []byte, lim Limits) (int, error) {
	for h.scanned < len(buf) {
		i := bytes.IndexByte(buf[h.scanned:], '\n')
		if i < 0 {
			h.scanned = len(buf)
			break
		}
		lf := h.scanned + i
		if lf == 0 || buf[lf-1] != '\r' {
			return 0, fail(400, "a line ends with a bare LF, not CRLF")
		}
		h.scanned = lf + 1
		if lf >= 2 && buf[lf-2] == '\n' { // CRLF CRLF: the LF before was checked for its CR
			if lf+1 > lim.Head {
				return 0, fail(431, "the head is longer than "+strconv.Itoa(lim.Head)+" bytes")
			}
			return lf + 1, nil
		}
		if lf == 1 {
			return 0, fail(400, "an empty line before the start line")
		}
	}
	if len(buf) > lim.Head {
		return 0, fail(431, "the head is longer than "+strconv.Itoa(lim.Head)+" bytes")
	}
	return 0, nil
}

// parse reads the complete head in buf (which ends with CRLF CRLF); head:
// a response to HEAD.
func (h *Head) parse(buf []byte, lim Limits, request, head bool) error {
	h.Len = len(buf)
	h.Length = -1
	line := bytes.IndexByte(buf, '\n') - 1 // the start line's CR
	var err error
	if request {
		err = h.requestLine(buf[:line], lim)
	} else {
		err = h.statusLine(buf[:line])
	}
	if err != nil {
		return err
	}
	f := framing{request: request}
	for at := line + 2; ; {
		lf := at + bytes.IndexByte(buf[at:], '\n')
		if lf == at+1 { // the empty line
			break
		}
		if len(h.Fields) == lim.Fields {
			return fail(431, "more than "+strconv.Itoa(lim.Fields)+" header fields")
		}
		fd, err := field(buf, at, lf-1)
		if err != nil {
			return err
		}
		h.Fields = append(h.Fields, fd)
		if err := f.note(h, buf, fd); err != nil {
			return err
		}
		at = lf + 1
	}
	return f.finish(h, buf, request, head)
}

// requestLine reads method SP target SP HTTP/1.x.
func (h *Head) requestLine(line []byte, lim Limits) (err error) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !token(line[:sp]) {
		return fail(400, "the method is not a token")
	}
	h.Method = Span{0, int32(sp)}
	rest := line[sp+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return fail(400, "no request target")
	}
	if sp2 > lim.Target {
		return fail(414, "the request target is longer than "+strconv.Itoa(lim.Target)+" bytes")
	}
	for _, c := range rest[:sp2] {
		if c <= ' ' || c == 0x7f {
			return fail(400, "a control byte in the request target")
		}
	}
	h.Target = Span{int32(sp + 1), int32(sp + 1 + sp2)}
	if h.Form, err = form(line[:sp], rest[:sp2]); err != nil {
		return err
	}
	minor, err := version(rest[sp2+1:])
	if err != nil {
		return err
	}
	h.Minor = minor
	return nil
}

// statusLine reads HTTP/1.x SP 3DIGIT [SP reason].
func (h *Head) statusLine(line []byte) error {
	if len(line) < 12 || line[8] != ' ' {
		return fail(502, "not an HTTP/1 status line")
	}
	minor, err := version(line[:8])
	if err != nil {
		return fail(502, err.(*Error).Why)
	}
	h.Minor = minor
	s := line[9:12]
	if s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
		return fail(502, "the status is not three digits")
	}
	h.Status = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	if len(line) > 12 {
		if line[12] != ' ' {
			return fail(502, "the status is not three digits")
		}
		for _, c := range line[13:] {
			if !valueByte(c) {
				return fail(502, "a control byte in the reason phrase")
			}
		}
		h.Reason = Span{13, int32(len(line))}
	}
	return nil
}

// form tells the target's form. A path's percent-escapes must be whole,
// as net/http requires; the other forms go on to net/http as they are.
func form(method, t []byte) (Form, error) {
	switch {
	case string(method) == "CONNECT" && t[0] != '/':
		return Authority, nil
	case t[0] == '/':
		path, _, _ := bytes.Cut(t, []byte{'?'})
		for i := 0; i < len(path); i++ {
			if path[i] == '%' {
				if i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
					return 0, fail(400, "a broken percent-escape in the request target")
				}
			}
		}
		return Origin, nil
	case len(t) == 1 && t[0] == '*':
		return Asterisk, nil
	}
	if colon := bytes.IndexByte(t, ':'); colon > 0 && isAlpha(t[0]) {
		for _, c := range t[1:colon] {
			if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
				return 0, fail(400, "the request target is not a path, * or a URL")
			}
		}
		return Absolute, nil
	}
	return 0, fail(400, "the request target is not a path, * or a URL")
}

func isHex(c byte) bool { _, ok := hexDigit(c); return ok }

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// version reads HTTP/1.0 or HTTP/1.1.
func version(v []byte) (int, error) {
	if len(v) == 8 && string(v[:7]) == "HTTP/1." && (v[7] == '0' || v[7] == '1') {
		return int(v[7] - '0'), nil
	}
	if len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]) {
		return 0, fail(505, "HTTP version "+string(v[5:])+" is not served")
	}
	return 0, fail(400, "not HTTP/1.0 or HTTP/1.1")
}

// field reads the field line buf[at:cr].
func field(buf []byte, at, cr int) (Field, error) {
	line := buf[at:cr]
	if line[0] == ' ' || line[0] == '\t' {
		return Field{}, fail(400, "obsolete line folding")
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return Field{}, fail(400, "a header line without a colon")
	}
	if colon == 0 || !token(line[:colon]) {
		if colon > 0 && (line[colon-1] == ' ' || line[colon-1] == '\t') {
			return Field{}, fail(400, "whitespace before a header's colon")
		}
		return Field{}, fail(400, "a header name that is not a token")
	}
	v0, v1 := colon+1, len(line)
	for v0 < v1 && (line[v0] == ' ' || line[v0] == '\t') {
		v0++
	}
	for v1 > v0 && (line[v1-1] == ' ' || line[v1-1] == '\t') {
		v1--
	}
	for _, c := range line[v0:v1] {
		if !valueByte(c) {
			return Field{}, fail(400, "a control byte in a header value")
		}
	}
	return Field{Name: Span{int32(at), int32(at + colon)}, Value: Span{int32(at + v0), int32(at + v1)}}, nil
}

// Field is the value of the first field named name (lower case), and
// whether there is one.
func (h *Head) Field(buf []byte, name string) ([]byte, bool) {
	for _, f := range h.Fields {
		if equalFold(f.Name.Of(buf), name) {
			return f.Value.Of(buf), true
		}
	}
	return nil, false
}

// framing gathers what the fields say of the body and the connection.
type framing struct {
	request                                      bool
	lengths, encodings, hosts                    int
	keepAlive, close, upgradeToken, upgradeField bool
}

func (f *framing) note(h *Head, buf []byte, fd Field) error {
	name, v := fd.Name.Of(buf), fd.Value.Of(buf)
	switch len(name) {
	case len("content-length"):
		if !equalFold(name, "content-length") {
			return nil
		}
		if f.lengths++; f.lengths > 1 {
			if !f.request { // a response may repeat the same length, as net/http allows
				if n, ok := length(v); ok && n == h.Length {
					return nil
				}
			}
			return fail(400, "Content-Length given more than once")
		}
		n, ok := length(v)
		if !ok {
			return fail(400, "Content-Length is not a number of bytes")
		}
		h.Length = n
	case len("transfer-encoding"):
		if !equalFold(name, "transfer-encoding") {
			return nil
		}
		if h.Minor == 0 {
			return fail(400, "Transfer-Encoding in an HTTP/1.0 message")
		}
		if f.encodings++; f.encodings > 1 {
			return fail(400, "Transfer-Encoding given more than once")
		}
		if !equalFold(v, "chunked") {
			if last := lastToken(v); !equalFold(last, "chunked") {
				return fail(400, "Transfer-Encoding does not end with chunked")
			}
			return fail(501, "a transfer coding other than chunked")
		}
		h.Chunked = true
	case len("host"):
		if equalFold(name, "host") {
			f.hosts++
			h.Host = fd.Value
		}
	case len("connection"):
		if !equalFold(name, "connection") {
			return nil
		}
		for rest := v; len(rest) > 0; {
			var t []byte
			t, rest = nextToken(rest)
			switch {
			case equalFold(t, "close"):
				f.close = true
			case equalFold(t, "keep-alive"):
				f.keepAlive = true
			case equalFold(t, "upgrade"):
				f.upgradeToken = true
			}
		}
	case len("expect"):
		if equalFold(name, "expect") {
			if equalFold(v, "100-continue") && h.Expect == ExpectNothing {
				h.Expect = ExpectContinue
			} else {
				h.Expect = ExpectOther
			}
		}
	case len("upgrade"):
		if equalFold(name, "upgrade") {
			f.upgradeField = true
		}
	}
	return nil
}

func (f *framing) finish(h *Head, buf []byte, request, head bool) error {
	if h.Chunked && f.lengths > 0 {
		return fail(400, "both Content-Length and Transfer-Encoding")
	}
	h.Close = f.close || h.Minor == 0 && !f.keepAlive
	h.Upgrade = f.upgradeField && f.upgradeToken
	if !request {
		switch {
		case head || h.Status < 200 || h.Status == 204 || h.Status == 304:
			h.Length, h.Chunked = 0, false // no body, whatever the fields say
		case h.Length < 0 && !h.Chunked:
			h.Close = true // the body ends with the connection
		}
		return nil
	}
	switch {
	case f.hosts > 1:
		return fail(400, "Host given more than once")
	case f.hosts == 0 && h.Minor == 1 && string(h.Method.Of(buf)) != "CONNECT":
		return fail(400, "no Host in an HTTP/1.1 request")
	case f.hosts == 1 && !validHost(h.Host.Of(buf)):
		return fail(400, "Host is not a host")
	}
	if h.Length < 0 && !h.Chunked {
		h.Length = 0 // a request without framing has no body
	}
	return nil
}

// length reads a Content-Length: digits only, at most 18 of them (under
// 10^18 bytes, no overflow possible).
func length(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// nextToken splits the first element off a comma-separated list value,
// trimmed of whitespace.
func nextToken(v []byte) (t, rest []byte) {
	t, rest, _ = bytes.Cut(v, []byte{','})
	return bytes.Trim(t, " \t"), rest
}

func lastToken(v []byte) []byte {
	var last []byte
	for len(v) > 0 {
		var t []byte
		if t, v = nextToken(v); len(t) > 0 {
			last = t
		}
	}
	return last
}

// validHost is net/http's check of a Host value (httpguts.ValidHostHeader):
// the bytes a host, a port, brackets and percent-escapes may use.
func validHost(v []byte) bool {
	for _, c := range v {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

var tcharTable, valueTable, hostByte [256]bool

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || isDigit(b)
		tcharTable[c] = alnum || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0
		valueTable[c] = b == '\t' || b >= ' ' && b != 0x7f
		hostByte[c] = alnum || bytes.IndexByte([]byte("!$%&'()*+,-.:;=[]_~"), b) >= 0
	}
}

func token(b []byte) bool {
	for _, c := range b {
		if !tcharTable[c] {
			return false
		}
	}
	return len(b) > 0
}

func valueByte(c byte) bool { return valueTable[c] }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// equalFold compares b with the lower-case ASCII s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
