package http1

import (
	"net/textproto"
	"strings"
	"unsafe"
)

// Header is a parsed head's fields as the decorations read and change them
// (exchange.Header): the fields as they came, views into the head's
// buffer, less those deleted, plus those added. Nothing is copied until
// the head is written out again (AppendFields), so the names the client
// or the app spelled go out as they were, and a head no decoration
// touched costs no allocation.
//
// The strings Get returns are views into the buffer too: they are valid
// until the buffer is reused for the next message, that is, for the
// exchange's life; a decoration keeping one past it must copy it.
type Header struct {
	buf    []byte
	fields []Field
	gone   []bool // by field: deleted
	added  []added
}

type added struct{ name, value string }

// Reset makes h the fields of the head just parsed from buf, unchanged.
func (h *Header) Reset(buf []byte, fields []Field) {
	h.buf, h.fields = buf, fields
	if cap(h.gone) < len(fields) {
		h.gone = make([]bool, len(fields), max(len(fields), 16))
	}
	h.gone = h.gone[:len(fields)]
	clear(h.gone)
	clear(h.added)
	h.added = h.added[:0]
}

// view is b as a string without a copy (see Header).
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Get is the first value of the field name, case-insensitive, or "".
func (h *Header) Get(name string) string {
	for i, f := range h.fields {
		if !h.gone[i] && FoldEqual(f.Name.Of(h.buf), name) {
			return view(f.Value.Of(h.buf))
		}
	}
	for _, a := range h.added {
		if strings.EqualFold(a.name, name) {
			return a.value
		}
	}
	return ""
}

// Values are all the values of the field name, in order.
func (h *Header) Values(name string) []string {
	var vs []string
	for i, f := range h.fields {
		if !h.gone[i] && FoldEqual(f.Name.Of(h.buf), name) {
			vs = append(vs, view(f.Value.Of(h.buf)))
		}
	}
	for _, a := range h.added {
		if strings.EqualFold(a.name, name) {
			vs = append(vs, a.value)
		}
	}
	return vs
}

// Set replaces every value of name with value.
func (h *Header) Set(name, value string) {
	h.Del(name)
	h.Add(name, value)
}

// Add appends a field, its name in canonical form as net/http writes the
// fields a program adds.
func (h *Header) Add(name, value string) {
	h.added = append(h.added, added{textproto.CanonicalMIMEHeaderKey(name), value})
}

// Del deletes every field named name.
func (h *Header) Del(name string) {
	for i, f := range h.fields {
		if FoldEqual(f.Name.Of(h.buf), name) {
			h.gone[i] = true
		}
	}
	kept := h.added[:0]
	for _, a := range h.added {
		if !strings.EqualFold(a.name, name) {
			kept = append(kept, a)
		}
	}
	clear(h.added[len(kept):])
	h.added = kept
}

// Range calls f with each field's name and value, the original ones first
// in their order and spelling, then those added, until f returns false.
// The strings are views, as Get's.
func (h *Header) Range(f func(name, value string) bool) {
	for i, fl := range h.fields {
		if !h.gone[i] && !f(view(fl.Name.Of(h.buf)), view(fl.Value.Of(h.buf))) {
			return
		}
	}
	for _, a := range h.added {
		if !f(a.name, a.value) {
			return
		}
	}
}

// Has says whether a field named name is there.
func (h *Header) Has(name string) bool {
	for i, f := range h.fields {
		if !h.gone[i] && FoldEqual(f.Name.Of(h.buf), name) {
			return true
		}
	}
	for _, a := range h.added {
		if strings.EqualFold(a.name, name) {
			return true
		}
	}
	return false
}

// AppendFields appends the fields as "name: value\r\n" lines, the original
// ones first in their order and spelling, then those added; skip, when not
// nil, leaves out original fields (a hop's own, which the agent writes anew).
func (h *Header) AppendFields(dst []byte, skip func(name []byte) bool) []byte {
	for i, f := range h.fields {
		name := f.Name.Of(h.buf)
		if h.gone[i] || skip != nil && skip(name) {
			continue
		}
		dst = append(dst, name...)
		dst = append(dst, ':', ' ')
		dst = append(dst, f.Value.Of(h.buf)...)
		dst = append(dst, '\r', '\n')
	}
	for _, a := range h.added {
		dst = append(dst, a.name...)
		dst = append(dst, ':', ' ')
		dst = append(dst, a.value...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// FoldEqual compares b with s ignoring ASCII case (s in any case).
func FoldEqual(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Rewritten says whether the agent writes the field named name anew for
// each hop rather than passing it on: the connection's own fields (RFC 9110
// §7.6.1, as net/http's ReverseProxy drops them) and Transfer-Encoding,
// which the agent re-frames. A Content-Length is passed on: the parse
// checked it, and the body forwarded has that length.
func Rewritten(name []byte) bool {
	switch len(name) {
	case 2:
		return FoldEqual(name, "te")
	case 7:
		return FoldEqual(name, "upgrade")
	case 10:
		return FoldEqual(name, "connection") || FoldEqual(name, "keep-alive")
	case 16:
		return FoldEqual(name, "proxy-connection")
	case 17:
		return FoldEqual(name, "transfer-encoding")
	case 18:
		return FoldEqual(name, "proxy-authenticate")
	case 19:
		return FoldEqual(name, "proxy-authorization")
	}
	return false
}

// Nominated is the field names a head's Connection fields list (which are
// the connection's own too, as Rewritten's), appended to dst as spans.
func (h *Head) Nominated(buf []byte, dst []Span) []Span {
	for _, f := range h.Fields {
		if !equalFold(f.Name.Of(buf), "connection") {
			continue
		}
		v := f.Value
		for i := v.Off; i <= v.End; i++ {
			if i == v.End || buf[i] == ',' {
				s := Span{v.Off, i}
				for s.Off < s.End && (buf[s.Off] == ' ' || buf[s.Off] == '\t') {
					s.Off++
				}
				for s.End > s.Off && (buf[s.End-1] == ' ' || buf[s.End-1] == '\t') {
					s.End--
				}
				if s.Len() > 0 && !equalFold(s.Of(buf), "close") && !equalFold(s.Of(buf), "keep-alive") {
					dst = append(dst, s)
				}
				v.Off = i + 1
			}
		}
	}
	return dst
}
