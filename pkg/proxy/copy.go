package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// errNoPipe says that copySpliced could not make a pipe (out of file
// descriptors); all it read until then it wrote, and copying can go on.
var errNoPipe = errors.New("no pipe for splice")

// bufSize is the most one read moves. A read that fills it marks a bulk
// transfer, and that direction goes on with splice(2) (splice.go), as
// HAProxy's splice-auto does: the bytes then stay in the kernel. Small
// exchanges stay on read and write, which cost the same two syscalls and
// need no pipe. Measured on the 2-core build machine:
//   - one 1 GiB download in the local pod (curl in the client namespace, the
//     bench's Go app, 5 interleaved rounds): 1.26-1.77 GB/s spliced against
//     1.01-1.50 copied (medians 1.37 and 1.03); a 1 GiB upload from a Go
//     client to a Go sink reading 8 KiB at a time: the same within the
//     rounds' spread (medians 1.45 spliced, 1.47 copied);
//   - go test -bench Bulk ./pkg/proxy (loopback on both sides, a sink reading
//     256 KiB at a time): 2.68-2.86 GB/s against 1.96-2.24 copied through a
//     256 KiB buffer. A sink reading 8 KiB at a time (io.Discard's) turned
//     it round (1.28-1.52 against 2.16-2.29), which is why this path once
//     copied only;
//   - the 1 KiB echo exchange (BenchmarkSmallExchange): 31-35 us whichever
//     way, within noise.
const bufSize = 256 << 10

// bufs holds the copy buffers. A buffer is taken only once data is ready to
// read and returned as soon as it is written, so an idle connection holds no
// buffer at all: a thousand idle keep-alive connections cost goroutine
// stacks, not 2 x 256 KiB each.
var bufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// copyHalf writes first (bytes already read from src), then copies src to
// dst until src's EOF, then passes the EOF on with a
// half-close so that the other direction can go on. An error caused by our
// own close of the other side is not this half's failure and is reported as
// nil.
func copyHalf(dst, src *net.TCPConn, first []byte, it *idle) (int64, error) {
	n := int64(0)
	if len(first) > 0 {
		w, err := dst.Write(first)
		n += int64(w)
		if err != nil {
			return n, err
		}
	}
	m, err := copyPooled(dst, src, it)
	n += m
	if err == nil {
		dst.CloseWrite()
		return n, nil
	}
	if errors.Is(err, net.ErrClosed) {
		return n, nil
	}
	return n, err
}

// copyPooled moves bytes from src to dst through a pooled buffer that it
// holds only while bytes are in flight, and hands a bulk transfer on to
// copySpliced. Every read and write that moves bytes touches it.
func copyPooled(dst, src *net.TCPConn, it *idle) (written int64, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	for {
		var buf *[]byte
		var n int
		var rerr error
		// rc.Read calls read when the poller says src is readable; on
		// EAGAIN the buffer goes back to the pool while we wait.
		err := rc.Read(func(fd uintptr) bool {
			buf = bufs.Get().(*[]byte)
			for {
				n, rerr = syscall.Read(int(fd), *buf)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				bufs.Put(buf)
				buf = nil
				return false
			}
			return true
		})
		if err == nil {
			err = rerr
		}
		if n > 0 {
			it.touch()
			w, werr := writeAll(dst, (*buf)[:n], it)
			written += int64(w)
			if werr != nil {
				err = werr
			}
		}
		full := buf != nil && n == len(*buf)
		if buf != nil {
			bufs.Put(buf)
		}
		switch {
		case err != nil:
			return written, err
		case n <= 0:
			return written, nil // EOF
		case full:
			// A read that fills the buffer is a bulk transfer: the rest
			// of this direction is spliced.
			m, err := copySpliced(dst, src, it)
			written += m
			if err != errNoPipe {
				return written, err
			}
		}
	}
}

// writeAll writes p to dst.
func writeAll(dst *net.TCPConn, p []byte, it *idle) (int, error) {
	n, err := writeOut(dst, int64(len(p)), it, func(fd int, done int64) (int64, error) {
		n, err := syscall.Write(fd, p[done:])
		return int64(n), err
	})
	return int(n), err
}

// writeOut moves n bytes to dst, one call of op (one write or splice, which
// returns what it moved) per try, waiting while dst's send buffer is full,
// and touches it after every call that moved bytes: a slow reader taking a
// big write bit by bit is not idle. It takes dst's raw conn itself, so that
// the compiler sees its type and the callbacks stay on the stack: nothing
// is allocated per write.
func writeOut(dst *net.TCPConn, n int64, it *idle, op func(fd int, done int64) (int64, error)) (done int64, err error) {
	wc, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	for done < n {
		var m int64
		var werr error
		err := wc.Write(func(fd uintptr) bool {
			for {
				m, werr = op(int(fd), done)
				if werr != syscall.EINTR {
					break
				}
			}
			return werr != syscall.EAGAIN
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			return done, err
		}
		if m <= 0 { // a write to a socket moves a byte or fails; never spin
			return done, io.ErrNoProgress
		}
		done += m
		it.touch()
	}
	return done, nil
}
