package looptls

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// State is where a Conn's handshake stands.
type State uint8

const (
	Handshaking State = iota // on its goroutine: the owner waits to be woken
	Open                     // done: the owner's bytes go through crypto/tls's records
	Failed                   // the handshake failed (Err says why): the owner closes the socket
)

// maxHandshakes bounds the handshakes on goroutines at once, in the whole
// process: past it a handshake fails at once (ErrBusy), as a listener past
// its backlog refuses.
const maxHandshakes = 1024

var inFlight atomic.Int64

// ErrBusy is the failure of a handshake refused past maxHandshakes.
var ErrBusy = errors.New("too many TLS handshakes in flight")

// Conn is TLS over one socket of a loop.
type Conn struct {
	l        *loop.Loop
	tc       *tls.Conn
	w        wire
	state    State
	err      error // why the handshake failed
	opened   bool  // Open since the owner last noted: its readiness is set anew
	released bool
	shut     bool  // CloseWrite asked: the socket's write side shuts once out is empty
	readErr  error // an end that came with the last bytes read: the next Read's
}

var _ loop.Layer = (*Conn)(nil)

// Server starts the server's handshake on s, a socket registered on l
// whose first bytes, hello, were read already (a sniffed ClientHello).
func Server(l *loop.Loop, s *loop.Socket, cfg *tls.Config, hello []byte) *Conn {
	c := newConn(l, s, hello)
	c.tc = tls.Server(&c.w, cfg)
	c.start()
	return c
}

// Client starts the client's handshake on s, a socket registered on l and
// connected.
func Client(l *loop.Loop, s *loop.Socket, cfg *tls.Config) *Conn {
	c := newConn(l, s, nil)
	c.tc = tls.Client(&c.w, cfg)
	c.start()
	return c
}

func newConn(l *loop.Loop, s *loop.Socket, pre []byte) *Conn {
	c := &Conn{l: l}
	c.w = wire{c: c, raw: loop.Socket{FD: s.FD, Read: s.Read, Write: s.Write, PeerShut: s.PeerShut, Broken: s.Broken},
		pre: append([]byte(nil), pre...), hs: true, feed: make(chan feed, 1)}
	return c
}

func (c *Conn) start() {
	if inFlight.Add(1) > maxHandshakes {
		inFlight.Add(-1)
		c.state, c.err = Failed, ErrBusy
		return
	}
	go c.handshake()
}

// handshake runs crypto/tls's handshake over the loop, on its goroutine.
func (c *Conn) handshake() {
	defer inFlight.Add(-1)
	err := c.tc.Handshake()
	c.l.Post(func() { c.handshook(err) }) // a loop that stopped has no owner to tell
}

// handshook: the handshake ended. From here on crypto/tls runs on the loop.
func (c *Conn) handshook(err error) {
	if c.released {
		return
	}
	c.w.hs = false
	if err != nil {
		c.state, c.err = Failed, err
	} else {
		c.state, c.opened = Open, true
	}
	c.l.Wake(c.w.raw.FD)
}

// State is where the handshake stands.
func (c *Conn) State() State { return c.state }

// Err is why the handshake failed.
func (c *Conn) Err() error { return c.err }

// ConnectionState is crypto/tls's, once Open.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// Read reads plaintext into b: 0 and nil when none is to be had until the
// socket's next edge (s.Read is then Waiting); io.EOF at the peer's
// close_notify, or its FIN at a record's end. A record that fails to
// decrypt ends the connection with an alert, and none of it is given.
func (c *Conn) Read(s *loop.Socket, b []byte) (int, error) {
	if c.readErr != nil {
		return 0, c.readErr
	}
	switch c.state {
	case Failed:
		return 0, c.err
	case Handshaking:
		s.Read = loop.Waiting
		return 0, nil
	}
	n, err := c.tc.Read(b)
	c.w.flush() // what reading made crypto/tls send: a KeyUpdate's answer, an alert
	if err == errWait {
		s.Read = loop.Waiting
		err = nil
	} else if err != nil {
		c.readErr = err
		if n > 0 {
			err = nil // the end is the next Read's
		}
	}
	c.settle(s)
	return n, err
}

// Write seals b whole into records and writes them, or takes nothing while
// records written before are not yet out (s.Write is then Waiting).
func (c *Conn) Write(s *loop.Socket, b []byte) (int, error) {
	switch {
	case c.state == Failed:
		return 0, c.err
	case c.state == Handshaking:
		s.Write = loop.Waiting
		return 0, nil
	case c.w.err != nil:
		return 0, c.w.err
	}
	if !c.w.flush() {
		s.Write = loop.Waiting
		return 0, nil
	}
	// The records of one write go out in one write(2): crypto/tls writes
	// each record to its connection as it seals it.
	c.w.batch = scratchOf(c.l)
	n, err := c.tc.Write(b)
	c.w.send()
	c.settle(s)
	return n, err
}

// Note moves what the wire holds as the socket's readiness allows, and
// sets the owner's readiness to what the Conn can give and take.
func (c *Conn) Note(s *loop.Socket, ev loop.Events) {
	c.w.raw.Note(ev)
	c.w.flush()
	if c.state == Handshaking {
		c.w.pump()
		return
	}
	if c.opened {
		// Bytes that came with the handshake's last flight are in
		// crypto/tls's buffer already: no edge will come for them.
		c.opened = false
		s.Read, s.Write = loop.Ready, loop.Ready
	}
	c.settle(s)
}

// settle keeps the owner's view true: no room while records are pending,
// and a broken socket shows on the next try.
func (c *Conn) settle(s *loop.Socket) {
	if c.w.err != nil {
		s.Broken, s.Read, s.Write = true, loop.Ready, loop.Ready
		return
	}
	if len(c.w.out) > 0 {
		s.Write = loop.Waiting
	} else if c.shut {
		c.shut = false
		loop.ShutdownWrite(&c.w.raw)
	}
}

// Flushed says whether every record is out.
func (c *Conn) Flushed() bool { return len(c.w.out) == 0 || c.w.err != nil }

// CloseWrite sends close_notify, then shuts the socket's write side once
// every record is out.
func (c *Conn) CloseWrite(s *loop.Socket) {
	if c.state == Open {
		c.tc.CloseWrite() // an error shows on the socket
		c.w.flush()
	}
	c.shut = true
	c.settle(s)
}

// Leave goes on over nc: the socket leaves the loop for goroutines (an
// HTTP/2 connection, say), and the returned conn is its plaintext.
func (c *Conn) Leave(nc net.Conn) net.Conn {
	c.w.nc = nc
	return c.tc
}

// Release stops a handshake in flight (its goroutine's read fails) and
// drops what is pending.
func (c *Conn) Release() {
	if c.released {
		return
	}
	c.released = true
	if c.w.hs {
		close(c.w.feed)
	}
	c.w.out = nil
}

// errWait is the wire's "no bytes now": temporary, so that crypto/tls
// returns it from Read without keeping it, and goes on with the record
// where it stopped on the next Read.
var errWait error = waitError{}

type waitError struct{}

func (waitError) Error() string   { return "looptls: no bytes to read now" }
func (waitError) Timeout() bool   { return true }
func (waitError) Temporary() bool { return true }

// feed is what the loop read for the handshake's goroutine.
type feed struct {
	b   []byte
	err error
}

// wire is crypto/tls's connection: the socket, through the loop. During
// the handshake (hs) it is used by the handshake's goroutine and talks to
// the loop by posts and feed; then by the loop only; after Leave (nc set)
// by goroutines, over nc.
type wire struct {
	c   *Conn
	raw loop.Socket // the socket itself, its readiness as the poller and the syscalls say
	pre []byte      // read before crypto/tls asked for it, given first
	out []byte      // records the socket has not taken yet
	err error       // the socket broke writing

	batch *[]byte // while an owner's Write seals its records: the loop's scratch they gather in

	hs      bool      // the handshake's goroutine uses the wire
	feed    chan feed // the loop's reads for it, one at a time; closed by Release
	wanting bool      // it waits for a read: the loop reads for it when the socket is ready

	nc     net.Conn   // after Leave
	leftMu sync.Mutex // guards out after Leave, between net/http's reader and writer
}

func (w *wire) Read(b []byte) (int, error) {
	if len(w.pre) > 0 {
		n := copy(b, w.pre)
		w.pre = w.pre[n:]
		if len(w.pre) == 0 {
			w.pre = nil // the read's buffer is not kept for the connection's life
		}
		return n, nil
	}
	switch {
	case w.nc != nil:
		if err := w.flushLeft(); err != nil {
			return 0, err
		}
		return w.nc.Read(b)
	case w.hs:
		if !w.c.l.Post(w.want) {
			return 0, net.ErrClosed
		}
		f, ok := <-w.feed
		if !ok {
			return 0, net.ErrClosed
		}
		if f.err != nil {
			return 0, f.err
		}
		n := copy(b, f.b)
		if n < len(f.b) {
			w.pre = f.b[n:]
		}
		return n, nil
	}
	n, err := loop.Read(&w.raw, b)
	if n == 0 && err == nil {
		return 0, errWait
	}
	return n, err
}

func (w *wire) Write(b []byte) (int, error) {
	switch {
	case w.nc != nil:
		if err := w.flushLeft(); err != nil {
			return 0, err
		}
		return w.nc.Write(b)
	case w.hs:
		q := append([]byte(nil), b...)
		if !w.c.l.Post(func() { w.queue(q) }) {
			return 0, net.ErrClosed
		}
		return len(b), nil
	case w.err != nil:
		return 0, w.err
	case w.batch != nil:
		*w.batch = append(*w.batch, b...)
		return len(b), nil
	}
	w.queue(b)
	return len(b), w.err
}

// send writes the records gathered in the batch, keeping what the socket
// does not take.
func (w *wire) send() {
	b := w.batch
	w.batch = nil
	w.queue(*b)
	*b = (*b)[:0]
}

// scratches are the loops' batches: one write's records are gathered
// and written at once, so they need no room of the connection's own.
var scratches sync.Map // *loop.Loop -> *[]byte

func scratchOf(l *loop.Loop) *[]byte {
	if b, ok := scratches.Load(l); ok {
		return b.(*[]byte)
	}
	b, _ := scratches.LoadOrStore(l, new([]byte))
	return b.(*[]byte)
}

// want is the handshake goroutine's read, on the loop.
func (w *wire) want() {
	if w.c.released {
		return
	}
	w.wanting = true
	w.pump()
}

// pump reads for the handshake's goroutine when it waits and the socket
// has bytes.
func (w *wire) pump() {
	if !w.wanting {
		return
	}
	b := make([]byte, 16<<10)
	n, err := loop.Read(&w.raw, b)
	if n == 0 && err == nil {
		return // the next edge pumps again
	}
	w.wanting = false
	w.feed <- feed{b: b[:n:n], err: err}
}

// queue writes b after what is pending, keeping what the socket does not
// take; on the loop.
func (w *wire) queue(b []byte) {
	if w.c.released || w.err != nil {
		return
	}
	if len(w.out) == 0 {
		n, err := loop.Send(&w.raw, b)
		if err != nil {
			w.err = err
			return
		}
		b = b[n:]
	}
	w.out = append(w.out, b...)
}

// flush writes what is pending as far as the socket takes it, and says
// whether all is out.
func (w *wire) flush() bool {
	if len(w.out) == 0 || w.err != nil {
		return true
	}
	n, err := loop.Send(&w.raw, w.out)
	if err != nil {
		w.err = err
		return true
	}
	w.out = w.out[:copy(w.out, w.out[n:])]
	if len(w.out) == 0 && cap(w.out) > 64<<10 {
		w.out = nil // a burst's room is not kept for the connection's life
	}
	return len(w.out) == 0
}

// flushLeft writes what the loop left pending, once the socket left it.
func (w *wire) flushLeft() error {
	w.leftMu.Lock()
	defer w.leftMu.Unlock()
	if len(w.out) == 0 {
		return nil
	}
	_, err := w.nc.Write(w.out)
	w.out = nil
	return err
}

func (w *wire) Close() error {
	if w.nc != nil {
		return w.nc.Close()
	}
	return nil // the loop's owner closes the socket
}

func (w *wire) LocalAddr() net.Addr {
	if w.nc != nil {
		return w.nc.LocalAddr()
	}
	return &net.TCPAddr{}
}

func (w *wire) RemoteAddr() net.Addr {
	if w.nc != nil {
		return w.nc.RemoteAddr()
	}
	return &net.TCPAddr{}
}

// Deadlines are the loop's timers' while on it (crypto/tls sets one when
// it sends close_notify); Go's poller's after Leave.
func (w *wire) SetDeadline(t time.Time) error {
	if w.nc != nil {
		return w.nc.SetDeadline(t)
	}
	return nil
}

func (w *wire) SetReadDeadline(t time.Time) error {
	if w.nc != nil {
		return w.nc.SetReadDeadline(t)
	}
	return nil
}

func (w *wire) SetWriteDeadline(t time.Time) error {
	if w.nc != nil {
		return w.nc.SetWriteDeadline(t)
	}
	return nil
}

// CloseWrite half-closes the socket after Leave (crypto/tls's CloseWrite
// sends close_notify alone).
func (w *wire) CloseWrite() error {
	if cw, ok := w.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// InFlight is how many handshakes run on goroutines now.
func InFlight() int64 { return inFlight.Load() }
