package loop

import (
	"io"

	"golang.org/x/sys/unix"
)

// Read reads once from s into b and keeps s's readiness, for owners that
// read a socket themselves rather than through a Flow: EAGAIN, or a short
// read of a peer that has not shut, marks it Waiting and returns 0 and no
// error; the peer's end is io.EOF.
func Read(s *Socket, b []byte) (int, error) {
	if s.Read == Waiting {
		return 0, nil
	}
	n, err := read(s.FD, b)
	switch {
	case err == unix.EAGAIN:
		s.Read = Waiting
		return 0, nil
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	case n < len(b) && !s.PeerShut:
		s.Read = Waiting // a short read drained the socket
	}
	return n, nil
}

// Send writes b to s as far as s takes it and keeps s's readiness: when
// it returns less than len(b) and no error, s is Waiting for room.
func Send(s *Socket, b []byte) (int, error) {
	sent := 0
	for sent < len(b) {
		if s.Write == Waiting {
			return sent, nil
		}
		n, err := write(s.FD, b[sent:])
		if err == unix.EAGAIN {
			s.Write = Waiting
			return sent, nil
		}
		if err != nil {
			return sent, err
		}
		sent += n // a short write: only EAGAIN says to wait
	}
	return sent, nil
}

// ShutdownWrite shuts fd for writing: the peer reads its end.
func ShutdownWrite(fd int) { shutdownWrite(fd) }

// Own gives fd, registered already, to h: the same registration, with its
// events for h from now on (a connection passed from one owner to another
// on the same loop).
func (l *Loop) Own(fd int, h Handler) { l.fds[fd].h = h }
