package loop

import (
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Read reads once from s into b and keeps s's readiness, for owners that
// read a socket themselves rather than through a Flow: EAGAIN, or a short
// read of a peer that has not shut, marks it Waiting and returns 0 and no
// error; the peer's end is io.EOF. A socket with a Layer is read through it.
func Read(s *Socket, b []byte) (int, error) {
	if s.Read == Waiting {
		return 0, nil
	}
	if s.Layer != nil {
		return s.Layer.Read(s, b)
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
	if s.Layer != nil {
		if s.Write == Waiting {
			return 0, nil
		}
		return s.Layer.Write(s, b)
	}
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

// ShutdownWrite shuts s for writing: the peer reads its end. Through a
// Layer, once what it holds is out.
func ShutdownWrite(s *Socket) {
	if s.Layer != nil {
		s.Layer.CloseWrite(s)
		return
	}
	shutdownWrite(s.FD)
}

// Own gives fd, registered already, to h: the same registration, with its
// events for h from now on (a connection passed from one owner to another
// on the same loop).
func (l *Loop) Own(fd int, h Handler) { l.fds[fd].h = h }

// Wake calls fd's owner as for an event with nothing in it, Ready(fd, 0):
// how work that ended elsewhere for a socket (a TLS handshake on its
// goroutine) tells the owner to look again.
func (l *Loop) Wake(fd int) {
	if fd >= 0 && fd < len(l.fds) && l.fds[fd].h != nil {
		l.fds[fd].h.Ready(fd, 0)
	}
}

// CloseSocket takes s out of the loop and closes it, with an RST when
// reset, releasing its Layer first.
func (l *Loop) CloseSocket(s *Socket, reset bool) {
	if s.Layer != nil {
		s.Layer.Release()
	}
	if reset {
		l.Reset(s.FD)
	} else {
		l.Close(s.FD)
	}
}

// Leave takes s out of the loop as a net.Conn of Go's poller, to be served
// by goroutines: a duplicate of the socket (s.FD itself is closed), seen
// through s's Layer when it has one. No event of it reaches the loop again.
func (l *Loop) Leave(s *Socket) (net.Conn, error) {
	rerr := l.Remove(s.FD)
	f := os.NewFile(uintptr(s.FD), "")
	nc, err := net.FileConn(f)
	f.Close()
	if err == nil {
		err = rerr
	}
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		if s.Layer != nil {
			s.Layer.Release()
		}
		return nil, err
	}
	if s.Layer != nil {
		return s.Layer.Leave(nc), nil
	}
	return nc, nil
}
