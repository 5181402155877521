package proxy

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// pipeSize is the most one splice(2) moves, and the capacity asked of each
// pipe: as much as a copy buffer holds, so that a connection stalled on a
// slow reader pins no more than it would copying. (go test -bench Bulk:
// 2.72-2.93 GB/s with 256 KiB pipes, 2.16-2.89 with 1 MiB ones.)
const pipeSize = bufSize

// A pipe carries spliced bytes from one socket to another inside the kernel.
type pipe struct{ r, w int }

// idlePipes keeps up to its capacity of empty pipes for reuse (two file
// descriptors each); a pipe taken while none is idle is made, and one given
// back while the list is full is closed. A bounded list, not a sync.Pool:
// a pool would drop pipes without closing their descriptors.
var idlePipes = make(chan *pipe, 64)

func getPipe() (*pipe, error) {
	select {
	case p := <-idlePipes:
		return p, nil
	default:
	}
	return newPipe()
}

// newPipe makes a pipe (a variable so that a test can make it fail as
// running out of file descriptors does).
var newPipe = func() (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	// A bigger pipe takes more per call; the default (16 pages) still works.
	unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	return &pipe{r: fds[0], w: fds[1]}, nil
}

// putPipe gives back a pipe; empty says whether it holds no bytes, and one
// that does is closed, never reused.
func putPipe(p *pipe, empty bool) {
	if empty {
		select {
		case idlePipes <- p:
			return
		default:
		}
	}
	unix.Close(p.r)
	unix.Close(p.w)
}

// copySpliced moves bytes from src to dst with splice(2), through a pipe it
// holds only while bytes are in flight, until src's EOF or an error. The
// bytes never enter user space. When a pipe cannot be made (out of file
// descriptors) it returns errNoPipe, everything read until then written, so
// that the caller can go on copying.
func copySpliced(dst, src *net.TCPConn, it *idle) (written int64, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	for {
		var p *pipe
		var n int64
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			if p, rerr = getPipe(); rerr != nil {
				rerr = errNoPipe
				return true
			}
			for {
				n, rerr = unix.Splice(int(fd), nil, p.w, nil, pipeSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				putPipe(p, true)
				p = nil
				return false
			}
			return true
		})
		if err == nil {
			err = rerr
		}
		if n > 0 {
			it.touch()
			w, werr := pump(dst, p, n, it)
			written += w
			if werr != nil {
				err = werr
			}
		}
		if p != nil {
			putPipe(p, err == nil)
		}
		switch {
		case err != nil:
			return written, err
		case n <= 0:
			return written, nil // EOF
		}
	}
}

// pump writes the n bytes waiting in p to dst.
func pump(dst *net.TCPConn, p *pipe, n int64, it *idle) (int64, error) {
	return writeOut(dst, n, it, func(fd int, done int64) (int64, error) {
		return unix.Splice(p.r, nil, fd, nil, int(n-done), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	})
}
