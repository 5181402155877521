package loop

import (
	"io"

	"golang.org/x/sys/unix"
)

// BufSize is the most one read moves. A read that fills it marks a bulk
// transfer, and that direction goes on with splice(2), as HAProxy's
// splice-auto does: the bytes then stay in the kernel. Small exchanges stay
// on read and write, which cost the same two syscalls and need no pipe.
const BufSize = 256 << 10

// pipeSize is the capacity asked of each pipe and the most one splice
// moves: as much as a copy buffer, so that a flow stalled on a slow reader
// pins no more than it would copying.
const pipeSize = BufSize

// Outcome is where a Flow stands after a Pump.
type Outcome uint8

const (
	Blocked     Outcome = iota // waiting for the poller: the source is drained or the destination full
	Yielded                    // moved a turn's worth (turnBytes) with more to move: pump again on the next turn
	Finished                   // the source's EOF was read and passed on, nothing is pending
	ReadFailed                 // the source broke (reset, or another error)
	WriteFailed                // the destination broke
)

// turnBytes is the most one Pump moves: a bulk transfer between two fast
// sockets would otherwise keep the loop from every other connection for as
// long as it lasts. Four buffers' worth keeps the syscalls per byte low.
const turnBytes = 4 * BufSize

// Flow moves the bytes of one direction of a connection, from a source
// socket to a destination socket. Bytes read and not yet written are held
// in a buffer, or a pipe once the flow is bulk, taken from the loop only
// while they are in flight: an idle flow holds neither. The source is not
// read while bytes are pending, so a slow reader never grows memory.
type Flow struct {
	buf      []byte // buf[off:end] is read and not yet written; nil when nothing is
	off, end int
	pipe     *Pipe // holds piped spliced bytes not yet written; nil when none
	piped    int
	bulk     bool // a read filled the buffer: the rest is spliced
	// EOF: the source's end was read. Shut: it was passed on, the
	// destination shut for writing.
	EOF, Shut bool
	// Moved counts the bytes written to the destination.
	Moved int64
}

// Pending is what was read and not yet written, from a buffer (a flow that
// is being sniffed holds only a buffer).
func (f *Flow) Pending() []byte { return f.buf[f.off:f.end] }

// Held is how many bytes the flow holds in flight.
func (f *Flow) Held() int { return f.end - f.off + f.piped }

// Idle says whether nothing is in flight.
func (f *Flow) Idle() bool { return f.end == f.off && f.piped == 0 }

// Pump moves what it can from src to dst: what is pending first, then as
// long as src is ready and dst takes it. It returns Blocked with nothing
// more to do until the poller reports one of them, or Yielded after a
// turn's worth, when the caller must pump again soon: no edge will come
// for what is already ready. The source's EOF is
// passed on with a shutdown of dst's write side, unless closing: the
// caller closes dst as soon as the flow finishes.
func (f *Flow) Pump(l *Loop, src, dst *Socket, closing bool) (Outcome, error) {
	for start := f.Moved; ; {
		if f.Moved-start >= turnBytes {
			return Yielded, nil
		}
		if f.end > f.off {
			if dst.Write == Waiting {
				return Blocked, nil
			}
			n, err := put(dst, f.buf[f.off:f.end])
			if err == unix.EAGAIN {
				dst.Write = Waiting
				return Blocked, nil
			}
			if err != nil {
				return WriteFailed, err
			}
			f.off += n
			f.Moved += int64(n)
			if f.off < f.end {
				// A short write says the send buffer filled up, but only
				// EAGAIN promises an edge when room comes back: try again.
				continue
			}
			l.putBuf(f.buf)
			f.buf, f.off, f.end = nil, 0, 0
		}
		if f.piped > 0 {
			if dst.Write == Waiting {
				return Blocked, nil
			}
			n, err := splice(f.pipe.r, dst.FD, f.piped)
			if err == unix.EAGAIN {
				dst.Write = Waiting
				return Blocked, nil
			}
			if err != nil {
				return WriteFailed, err
			}
			f.piped -= n
			f.Moved += int64(n)
			if f.piped > 0 {
				continue // as a short write: only EAGAIN waits
			}
			l.putPipe(f.pipe, true)
			f.pipe = nil
		}
		if f.EOF {
			if !f.Shut {
				f.Shut = true
				if !closing {
					ShutdownWrite(dst) // an error here shows on the next read or write
				}
			}
			if dst.Layer != nil && !dst.Layer.Flushed() {
				return Blocked, nil // its Note writes the rest, and the owner pumps again
			}
			return Finished, nil
		}
		if src.Read == Waiting {
			return Blocked, nil
		}
		var err error
		if f.bulk && dst.Layer == nil {
			err = f.spliceIn(l, src)
		} else {
			err = f.readIn(l, src, BufSize)
		}
		if err != nil {
			return ReadFailed, err
		}
	}
}

// Load puts b, bytes already read from the source by the flow's owner,
// ahead of what the flow reads next: a connection that becomes a tunnel
// after an exchange (an HTTP Upgrade) passes on what came with the last
// head. b must fit in a buffer (BufSize) with what is pending.
func (f *Flow) Load(l *Loop, b []byte) {
	if len(b) == 0 {
		return
	}
	if f.buf == nil {
		f.buf = l.getBuf()
	}
	if copy(f.buf[f.end:], b) < len(b) {
		panic("loop: Flow.Load over a buffer")
	}
	f.end += len(b)
}

// Fill reads once from src into the pending buffer, up to max bytes held in
// all, without writing anything: what a sniff does before it knows where
// the bytes go. The EOF is noted in f.EOF.
func (f *Flow) Fill(l *Loop, src *Socket, max int) error {
	if src.Read == Waiting || f.EOF || f.end >= max {
		return nil
	}
	return f.readIn(l, src, max)
}

// readIn reads from src after what is pending, up to max bytes held.
func (f *Flow) readIn(l *Loop, src *Socket, max int) error {
	if f.buf == nil {
		f.buf = l.getBuf()
	}
	room := f.buf[f.end:max]
	if src.Layer != nil {
		return f.readLayer(l, src, room)
	}
	n, err := read(src.FD, room)
	switch {
	case err == unix.EAGAIN:
		// A read that filled the buffer left the socket Ready: the next
		// one finds out it was drained. A flow that cannot splice (its
		// destination has a Layer) reads on after a bulk read.
		src.Read = Waiting
		err = nil
	case err != nil:
	case n == 0:
		f.EOF = true
	default:
		f.end += n
		switch {
		case n == len(room) && max == BufSize:
			f.bulk = true
		case n < len(room) && !src.PeerShut:
			src.Read = Waiting // a short read drained the socket
		}
	}
	if f.end == f.off {
		l.putBuf(f.buf)
		f.buf, f.off, f.end = nil, 0, 0
	}
	return err
}

// readLayer reads what src's Layer gives into room: never bulk, since
// those bytes are not the socket's to splice.
func (f *Flow) readLayer(l *Loop, src *Socket, room []byte) error {
	n, err := src.Layer.Read(src, room)
	f.end += n
	if err == io.EOF {
		f.EOF, err = true, nil
	}
	if f.end == f.off {
		l.putBuf(f.buf)
		f.buf, f.off, f.end = nil, 0, 0
	}
	return err
}

// put writes b to dst, through its Layer when it has one: EAGAIN when
// dst takes nothing now.
func put(dst *Socket, b []byte) (int, error) {
	if dst.Layer == nil {
		return write(dst.FD, b)
	}
	n, err := dst.Layer.Write(dst, b)
	if n == 0 && err == nil {
		return 0, unix.EAGAIN
	}
	return n, err
}

// spliceIn moves what src holds into a pipe. Without a pipe (out of file
// descriptors) the flow goes on copying.
func (f *Flow) spliceIn(l *Loop, src *Socket) error {
	p, err := l.getPipe()
	if err != nil {
		f.bulk = false
		return nil
	}
	n, err := splice(src.FD, p.w, pipeSize)
	switch {
	case err == unix.EAGAIN:
		// The pipe is empty when a splice starts, so only the socket can
		// be drained. A short splice says nothing (the pipe's slots may
		// have run out first): the next one finds out.
		src.Read = Waiting
		err = nil
	case err != nil:
	case n == 0:
		f.EOF = true
	default:
		f.pipe, f.piped = p, n
		return nil
	}
	l.putPipe(p, true)
	return err
}

// Release gives back what the flow holds, when its connection closes or
// leaves the loop.
func (f *Flow) Release(l *Loop) {
	if f.buf != nil {
		l.putBuf(f.buf)
		f.buf, f.off, f.end = nil, 0, 0
	}
	if f.pipe != nil {
		l.putPipe(f.pipe, f.piped == 0)
		f.pipe, f.piped = nil, 0
	}
}

// idleBufs and idlePipes bound what a loop keeps for reuse.
const (
	idleBufs  = 64
	idlePipes = 64
)

func (l *Loop) getBuf() []byte {
	if n := len(l.bufs); n > 0 {
		b := l.bufs[n-1]
		l.bufs = l.bufs[:n-1]
		return b
	}
	return make([]byte, BufSize)
}

func (l *Loop) putBuf(b []byte) {
	if len(l.bufs) < idleBufs {
		l.bufs = append(l.bufs, b[:BufSize])
	}
}

// A Pipe carries spliced bytes from one socket to another in the kernel.
type Pipe struct{ r, w int }

// NewPipe makes a pipe; a variable so that a test can make it fail as
// running out of file descriptors does.
var NewPipe = func() (*Pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	// A bigger pipe takes more per call; the default (16 pages) still works.
	unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	return &Pipe{r: fds[0], w: fds[1]}, nil
}

func (p *Pipe) close() {
	closeFD(p.r)
	closeFD(p.w)
}

func (l *Loop) getPipe() (*Pipe, error) {
	if n := len(l.pipes); n > 0 {
		p := l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		return p, nil
	}
	return NewPipe()
}

// putPipe keeps an empty pipe for reuse; one still holding bytes is closed.
func (l *Loop) putPipe(p *Pipe, empty bool) {
	if empty && len(l.pipes) < idlePipes {
		l.pipes = append(l.pipes, p)
		return
	}
	p.close()
}

// IdlePipes is how many empty pipes the loop keeps now (for tests).
func (l *Loop) IdlePipes() int { return len(l.pipes) }
