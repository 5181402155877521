package accesslog

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// Buffered holds access log lines and writes them out together: within
// its interval of the first line held, or when the next line would not
// fit. Unbuffered, each request's line costs a write(2) of its own, and a
// container's standard output is a pipe that wakes the container runtime
// for each. A line is never split between two writes while it fits the
// buffer. Close writes out what is held; lines held when the process is
// killed are lost, as with Envoy's buffered access log files.
type Buffered struct {
	mu     sync.Mutex
	out    io.Writer
	buf    *bufio.Writer
	every  time.Duration
	timer  *time.Timer
	armed  bool // the timer will flush
	closed bool
}

// bufferSize holds about a hundred lines.
const bufferSize = 32 << 10

// NewBuffered buffers what is written to out, for at most every.
func NewBuffered(out io.Writer, every time.Duration) *Buffered {
	b := &Buffered{out: out, buf: bufio.NewWriterSize(out, bufferSize), every: every}
	b.timer = time.AfterFunc(every, b.flush)
	b.timer.Stop()
	return b
}

// Write takes one line: zerolog writes each event with one call.
func (b *Buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.out.Write(p)
	}
	if len(p) > b.buf.Available() && b.buf.Buffered() > 0 {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	n, err := b.buf.Write(p)
	if err != nil {
		b.buf.Reset(b.out) // bufio's errors stick: the next line tries again
		return n, err
	}
	if !b.armed && b.buf.Buffered() > 0 {
		b.armed = true
		b.timer.Reset(b.every)
	}
	return n, nil
}

func (b *Buffered) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed = false
	b.flushLocked()
}

func (b *Buffered) flushLocked() error {
	err := b.buf.Flush()
	if err != nil {
		b.buf.Reset(b.out) // what was held is lost; later lines are not
	}
	return err
}

// Close writes out the lines held; later lines are written at once.
func (b *Buffered) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.timer.Stop()
	return b.flushLocked()
}
