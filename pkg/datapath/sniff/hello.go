package sniff

import "encoding/binary"

// MaxHello bounds what is read to see a whole TLS ClientHello: one record.
const MaxHello = 5 + 16384

// Hello is what a client's first bytes say of a TLS ClientHello.
type Hello int

const (
	HelloNeedMore Hello = iota // a prefix of a ClientHello record: read more
	HelloPeer                  // a ClientHello that offers the ALPN asked for: a meshed peer
	HelloOther                 // TLS, but not offering it (the app's own TLS), or a ClientHello past one record
	HelloNotTLS                // not a TLS handshake at all
)

// PeerHello says whether b starts with a TLS ClientHello offering alpn
// among its application protocols (the way a meshed peer announces
// itself: Istio's istio-peer-exchange). It reads one record only; a
// ClientHello split across records is HelloOther. Nothing in b is
// trusted: every length is checked against what is there.
func PeerHello(b []byte, alpn string) Hello {
	switch {
	case len(b) == 0:
		return HelloNeedMore
	case b[0] != 0x16: // a handshake record
		return HelloNotTLS
	case len(b) < 5:
		if len(b) >= 2 && b[1] != 3 {
			return HelloNotTLS
		}
		return HelloNeedMore
	case b[1] != 3 || b[2] > 4: // record versions 3.0 to 3.4
		return HelloNotTLS
	}
	n := int(binary.BigEndian.Uint16(b[3:5]))
	if n > 16384 || n < 4 {
		return HelloNotTLS
	}
	if len(b) < 5+n {
		return HelloNeedMore
	}
	rec := b[5 : 5+n]
	if rec[0] != 1 { // client_hello
		return HelloOther
	}
	hl := int(rec[1])<<16 | int(rec[2])<<8 | int(rec[3])
	if hl > len(rec)-4 {
		return HelloOther // continues in the next record
	}
	if offers(rec[4:4+hl], alpn) {
		return HelloPeer
	}
	return HelloOther
}

// offers says whether the ClientHello body h has an ALPN extension that
// lists alpn.
func offers(h []byte, alpn string) bool {
	r := reader(h)
	if !r.skip(2+32) || !r.skipVec(1) || !r.skipVec(2) || !r.skipVec(1) { // version, random, session id, suites, compression
		return false
	}
	exts, ok := r.vec(2)
	for ok && len(exts) >= 4 {
		typ := binary.BigEndian.Uint16(exts)
		e := reader(exts[2:])
		var data reader
		if data, ok = e.vec(2); !ok {
			return false
		}
		exts = e
		if typ != 16 { // application_layer_protocol_negotiation
			continue
		}
		list, ok := data.vec(2)
		for ok && len(list) > 0 {
			var name reader
			if name, ok = list.vec(1); ok && string(name) == alpn {
				return true
			}
		}
		return false
	}
	return false
}

// reader reads length-prefixed parts off the front of a byte slice.
type reader []byte

func (r *reader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

// vec takes a vector whose length is in the next size bytes (1 or 2).
func (r *reader) vec(size int) (reader, bool) {
	if len(*r) < size {
		return nil, false
	}
	n := int((*r)[0])
	if size == 2 {
		n = int(binary.BigEndian.Uint16(*r))
	}
	if len(*r) < size+n {
		return nil, false
	}
	v := (*r)[size : size+n]
	*r = (*r)[size+n:]
	return v, true
}

func (r *reader) skipVec(size int) bool {
	_, ok := r.vec(size)
	return ok
}
