package http1

import "strconv"

// Chunked decodes a chunked body as it arrives, in pieces of any size: it
// tells framing from data, so that the agent forwards the data and writes
// framing of its own (the extensions and spacing a smuggler would play
// with never pass). Trailer fields are checked like header fields and
// kept, to be forwarded after the last chunk.
//
//	var c http1.Chunked
//	for !c.Done() {
//		skip, n, err := c.Next(b)   // b[:skip] framing, b[skip:skip+n] data
//		...forward b[skip:skip+n] as a chunk; b = b[skip+n:]; read more when b is empty
//	}
//	c.Trailers()                  // the trailer section, CRLF-terminated lines
type Chunked struct {
	state   chunkState
	size    int64 // the chunk size being read
	digits  int
	left    int64 // data bytes left in the current chunk
	line    int   // bytes of the current size line so far
	trailer []byte
	lineAt  int // where the current trailer line starts in trailer
}

type chunkState uint8

const (
	sizeDigits chunkState = iota // the chunk size, in hex
	sizeSpace                    // whitespace after the size
	extension                    // after ';' up to the CR
	sizeLF                       // the size line's LF
	chunkData
	dataCR // the CRLF after a chunk's data
	dataLF
	trailerLine // a trailer field, or the empty line that ends the body
	trailerLF
	done
)

// Bounds of the framing: a size line as long as net/http's, and a trailer
// section the size of a small head.
const (
	maxSizeLine = 4 << 10
	maxTrailers = 8 << 10
	maxDigits   = 15 // chunk sizes below 2^60
)

// Done reports whether the body ended (the last chunk and the trailers were read).
func (c *Chunked) Done() bool { return c.state == done }

// Trailers is the trailer section read, each line ending in CRLF; empty
// when there were none.
func (c *Chunked) Trailers() []byte { return c.trailer }

// Reset makes c ready for the next body.
func (c *Chunked) Reset() { *c = Chunked{trailer: c.trailer[:0]} }

func chunkErr(why string) error { return fail(400, "chunked body: "+why) }

// Next reads b: the first skip bytes are framing, the next n are data of
// the body, and both are consumed. Call it again with what follows.
func (c *Chunked) Next(b []byte) (skip, n int, err error) {
	for i := 0; i < len(b); {
		switch c.state {
		case chunkData:
			n := int(min(c.left, int64(len(b)-i)))
			if c.left -= int64(n); c.left == 0 {
				c.state = dataCR
			}
			return i, n, nil
		case done:
			return i, 0, nil
		}
		if err := c.step(b[i]); err != nil {
			return 0, 0, err
		}
		i++
		if c.state == done {
			return i, 0, nil
		}
	}
	return len(b), 0, nil
}

// step reads one byte of framing.
func (c *Chunked) step(b byte) error {
	switch c.state {
	case sizeDigits, sizeSpace, extension:
		if c.line++; c.line > maxSizeLine {
			return chunkErr("a chunk size line over " + strconv.Itoa(maxSizeLine) + " bytes")
		}
	}
	switch c.state {
	case sizeDigits:
		if v, ok := hexDigit(b); ok {
			if c.digits++; c.digits > maxDigits {
				return chunkErr("a chunk size too large")
			}
			c.size = c.size<<4 | int64(v)
			return nil
		}
		if c.digits == 0 {
			return chunkErr("a chunk size that is not hex")
		}
		return c.afterSize(b)
	case sizeSpace:
		return c.afterSize(b)
	case extension:
		switch {
		case b == '\r':
			c.state = sizeLF
		case !valueByte(b):
			return chunkErr("a control byte in a chunk extension")
		}
		return nil
	case sizeLF:
		if b != '\n' {
			return chunkErr("a size line not ended by CRLF")
		}
		if c.size == 0 {
			c.state, c.lineAt = trailerLine, len(c.trailer)
		} else {
			c.state, c.left = chunkData, c.size
		}
		c.size, c.digits, c.line = 0, 0, 0
		return nil
	case dataCR:
		if b != '\r' {
			return chunkErr("a chunk's data longer than its size")
		}
		c.state = dataLF
		return nil
	case dataLF:
		if b != '\n' {
			return chunkErr("a chunk's data not followed by CRLF")
		}
		c.state = sizeDigits
		return nil
	case trailerLine:
		if b == '\r' {
			c.state = trailerLF
			return nil
		}
		if len(c.trailer) == maxTrailers {
			return chunkErr("trailers over " + strconv.Itoa(maxTrailers) + " bytes")
		}
		c.trailer = append(c.trailer, b)
		return nil
	case trailerLF:
		if b != '\n' {
			return chunkErr("a trailer line not ended by CRLF")
		}
		if len(c.trailer) == c.lineAt { // the empty line: the body ends
			c.state = done
			return nil
		}
		if _, err := field(c.trailer, c.lineAt, len(c.trailer)); err != nil {
			return chunkErr("trailer: " + err.(*Error).Why)
		}
		c.trailer = append(c.trailer, '\r', '\n')
		c.state, c.lineAt = trailerLine, len(c.trailer)
		return nil
	}
	return nil
}

// afterSize reads what may follow a size: whitespace, an extension, the CR.
func (c *Chunked) afterSize(b byte) error {
	switch b {
	case ' ', '\t':
		c.state = sizeSpace
	case ';':
		c.state = extension
	case '\r':
		c.state = sizeLF
	default:
		return chunkErr("a chunk size that is not hex")
	}
	return nil
}

func hexDigit(b byte) (byte, bool) {
	switch {
	case '0' <= b && b <= '9':
		return b - '0', true
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10, true
	case 'A' <= b && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}

// AppendChunk appends data framed as one chunk to dst.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst // an empty chunk would end the body
	}
	dst = strconv.AppendUint(dst, uint64(len(data)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, data...)
	return append(dst, '\r', '\n')
}

// AppendLast appends the last chunk, the trailers (CRLF-terminated lines)
// and the empty line that end a chunked body.
func AppendLast(dst, trailers []byte) []byte {
	dst = append(dst, '0', '\r', '\n')
	dst = append(dst, trailers...)
	return append(dst, '\r', '\n')
}
