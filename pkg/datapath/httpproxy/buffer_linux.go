package httpproxy

import "github.com/veneermesh/veneer/pkg/datapath/http1"

// buffer holds the bytes read from one side of a session: b[off:end] read
// and not yet consumed. During an exchange b[head:floor] is the message's
// head, which the exchange's header views point into: making room moves
// the unconsumed bytes down to floor, never over the head. The memory is
// borrowed from the loop only while bytes are held (release gives it back).
type buffer struct {
	b                     []byte
	off, end, head, floor int
}

// maxBuf is a buffer's bound: a head at its limit (64 KiB) and some room.
const maxBuf = http1.MaxHead + 4<<10

func (q *buffer) pending() []byte { return q.b[q.off:q.end] }

// kept is the exchange's head.
func (q *buffer) kept() []byte { return q.b[q.head:q.floor] }

func (q *buffer) empty() bool { return q.off == q.end }

// room is where the next read goes: after what is held, made by moving
// it down to floor, or by growing the buffer to its bound; nil when full.
func (q *buffer) room(ls *loopState) []byte {
	if q.b == nil {
		q.b = ls.getBuf()
		q.off, q.end, q.head, q.floor = 0, 0, 0, 0
	}
	if q.end < len(q.b) {
		return q.b[q.end:]
	}
	if q.off > q.floor {
		n := copy(q.b[q.floor:], q.b[q.off:q.end])
		q.off, q.end = q.floor, q.floor+n
		return q.b[q.end:]
	}
	if len(q.b) >= maxBuf {
		return nil
	}
	bigger := make([]byte, maxBuf)
	copy(bigger, q.b[:q.end])
	ls.putBuf(q.b)
	q.b = bigger
	return q.b[q.end:]
}

// keep marks b[off:off+n] as the head of the exchange beginning, and
// consumes it.
func (q *buffer) keep(n int) {
	q.head, q.floor = q.off, q.off+n
	q.off = q.floor
}

// forget lets the next room reuse the space of the exchange's head.
func (q *buffer) forget() { q.head, q.floor = q.off, q.off }

// release gives the memory back to the loop, dropping what is held.
func (q *buffer) release(ls *loopState) {
	if q.b != nil {
		ls.putBuf(q.b)
	}
	*q = buffer{}
}
