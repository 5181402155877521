package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The HTTP/1 loop: a client connection's requests are read, handed to the
// chain and answered on the connection's own goroutine. net/http's server
// starts a goroutine per request to watch the client and wraps every
// request in a context and a response of its own; under load those cost
// a third of the agent's CPU per request. What this loop does not do
// itself goes to net/http, the bytes it read replayed: a head net/http
// would refuse (it answers 400, 431 or 505 as it always did), an Upgrade,
// Expect: 100-continue, CONNECT, and HTTP/2 (h2c). From then on net/http
// serves that connection.

const (
	maxHead    = 64 << 10  // the longest request head: the loop's and net/http's (MaxHeaderBytes)
	maxDiscard = 256 << 10 // unread request body read off to keep a connection, as net/http
	// watchAfter is how long a request may go unanswered before the loop
	// starts watching for the client leaving (so that the app's request is
	// cancelled and logged 499 DC). Quicker requests never pay for it (a
	// goroutine, a read, two deadlines); 250ms keeps that true under
	// overload too (1,000 keep-alive clients on 2 cores wait ~80 ms each).
	watchAfter = 250 * time.Millisecond
)

var (
	errHeadTooLarge = errors.New("request head too large")
	errClientGone   = errors.New("the client closed the connection")
	longAgo         = time.Unix(1, 0)
	readers         = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers         = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// h1conn is one client connection served by the loop.
type h1conn struct {
	s      *Server
	c      *conn
	ctx    context.Context // the connection's: cancelled when the client is gone
	cancel context.CancelCauseFunc
	br     *bufio.Reader // reads through h1conn.Read
	bw     *bufio.Writer
	remote string
	served bool // a request was read: the next waits under the idle timeout

	// rec holds every byte read while a head is read, so that a request
	// net/http should serve can be given to it whole.
	rec   []byte
	recOn bool

	// The watch: a read of one byte that notices the client leaving while
	// a slow request is served.
	watchT    *time.Timer
	watchMu   sync.Mutex
	watching  bool          // a request is in the chain
	watchDone chan struct{} // the watching read's end; nil when none runs
	back      []byte        // a byte that read took, for the next read
}

// serveHTTP1 serves c until it closes or is handed to net/http.
func (s *Server) serveHTTP1(c *conn) {
	h := &h1conn{s: s, c: c, remote: c.RemoteAddr().String()}
	h.ctx, h.cancel = context.WithCancelCause(context.WithValue(context.Background(), connKey{}, c))
	h.br = readers.Get().(*bufio.Reader)
	h.br.Reset(h)
	h.bw = writers.Get().(*bufio.Writer)
	h.bw.Reset(c)
	handedOff := false
	defer func() {
		h.cancel(context.Canceled)
		if h.watchT != nil {
			h.watchT.Stop()
		}
		h.br.Reset(nil)
		readers.Put(h.br)
		h.bw.Reset(nil)
		writers.Put(h.bw)
		if !handedOff {
			c.Close()
		}
	}()
	for {
		req, handOff := h.readRequest()
		if handOff {
			handedOff = s.handOff(h)
			return
		}
		if req == nil {
			return
		}
		w := &h1writer{h: h, req: req, header: make(http.Header), length: -1}
		if !h.serve(w, req) {
			h.bw.Flush()
			return
		}
		w.finish()
		if h.bw.Flush() != nil {
			return
		}
		if w.closeAfter {
			closeWriteAndDrain(c)
			return
		}
	}
}

// readRequest waits for and reads the next request. It returns nil when
// the connection should close, and handOff when net/http should serve it.
func (h *h1conn) readRequest() (req *http.Request, handOff bool) {
	c := h.c
	if h.br.Buffered() == 0 {
		c.state.Store(int32(http.StateIdle)) // Shutdown may close it now
	}
	// The first request must come within the header timeout, as with
	// net/http (a client that connects and says nothing is cut off); the
	// next ones within the idle timeout.
	wait := time.Now().Add(h.s.headerTimeout)
	if h.served {
		wait = time.Time{} // no idle timeout configured: none
		if d := time.Duration(h.s.idle.Load()); d > 0 {
			wait = time.Now().Add(d)
		}
	}
	c.SetReadDeadline(wait)
	if _, err := h.br.Peek(1); err != nil {
		return nil, false // idle timeout, or the client closed
	}
	c.state.Store(int32(http.StateActive))
	c.SetReadDeadline(time.Now().Add(h.s.headerTimeout))
	b, _ := h.br.Peek(h.br.Buffered())
	h.rec = append(h.rec[:0], b...)
	h.recOn = true
	req, err := http.ReadRequest(h.br)
	h.recOn = false
	if err == nil && cap(h.rec) > 16<<10 {
		h.rec = nil // a large head: not kept for the connection's life
	}
	if err != nil {
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) {
			return nil, false // the client left or stalled mid-head
		}
		return nil, true // malformed or too large: net/http answers it
	}
	c.SetReadDeadline(time.Time{})
	if !plain(req) {
		return nil, true
	}
	h.served = true
	req = req.WithContext(h.ctx)
	req.RemoteAddr = h.remote
	return req, false
}

// plain reports whether req is one the loop serves itself: HTTP/1.x in
// origin form with a valid Host, and none of what net/http handles with
// care (Upgrade, Expect: 100-continue, CONNECT).
func plain(req *http.Request) bool {
	if req.ProtoMajor != 1 || req.Method == "CONNECT" || req.Method == "PRI" {
		return false
	}
	if len(req.Header["Upgrade"]) > 0 || len(req.Header["Expect"]) > 0 {
		return false
	}
	// ReadRequest took the Host header out into req.Host (and refused a
	// second one); a request in absolute form has its host in the URL.
	if req.URL.Host != "" || req.ProtoMinor > 0 && req.Host == "" {
		return false
	}
	if !httpguts.ValidHostHeader(req.Host) {
		return false
	}
	// ReadRequest keeps a name with a space before its colon; net/http's
	// server refuses it, and so must every hop (request smuggling).
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}

// Read is what the bufio.Reader reads: the byte a watch took first, then
// the connection, recorded while a head is read.
func (h *h1conn) Read(p []byte) (int, error) {
	if len(h.back) > 0 {
		n := copy(p, h.back)
		h.back = h.back[n:]
		return n, nil
	}
	n, err := h.c.Read(p)
	if h.recOn {
		h.rec = append(h.rec, p[:n]...)
		if len(h.rec) > maxHead+4<<10 && err == nil {
			err = errHeadTooLarge
		}
	}
	return n, err
}

// handOff gives the connection, with the bytes of the request read so far
// replayed first, to net/http's server.
func (s *Server) handOff(h *h1conn) bool {
	h.c.again = h.rec
	h.rec = nil
	return s.ln.push(h.c)
}

// serve runs the chain for req. A panic ends the connection, as in
// net/http; http.ErrAbortHandler (the forwarder's and ReverseProxy's, when
// the app's body broke off or the client left mid-body) quietly.
func (h *h1conn) serve(w *h1writer, req *http.Request) (ok bool) {
	defer func() {
		if err := recover(); err != nil {
			if err != http.ErrAbortHandler {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				h.s.log.Error().Interface("panic", err).Str("stack", string(buf)).Msg("HTTP handler panicked")
			}
			ok = false
		}
	}()
	if req.Body == http.NoBody && h.br.Buffered() == 0 { // a read now takes nothing of the request's
		h.startWatch()
		defer h.stopWatch()
	}
	h.s.ServeHTTP(w, req)
	return true
}

// startWatch arms the watch for the request going into the chain.
func (h *h1conn) startWatch() {
	h.watchMu.Lock()
	h.watching = true
	h.watchMu.Unlock()
	if h.watchT == nil {
		h.watchT = time.AfterFunc(watchAfter, h.watch)
	} else {
		h.watchT.Reset(watchAfter)
	}
}

// watch, for a request unanswered after watchAfter, reads from the client
// until the request ends: an error (not the deadline stopWatch sets) means
// the client is gone, and cancels the request; a byte (the next pipelined
// request) is kept for the loop.
func (h *h1conn) watch() {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	if !h.watching || h.watchDone != nil {
		return
	}
	done := make(chan struct{})
	h.watchDone = done
	go func() {
		defer close(done)
		var b [1]byte
		n, err := h.c.Read(b[:])
		if n == 1 {
			h.back = append(h.back[:0], b[0])
		} else if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			h.cancel(errClientGone)
		}
	}()
}

// stopWatch ends the watch, and waits for its read to return.
func (h *h1conn) stopWatch() {
	h.watchT.Stop()
	h.watchMu.Lock()
	h.watching = false
	done := h.watchDone
	h.watchDone = nil
	h.watchMu.Unlock()
	if done != nil {
		h.c.SetReadDeadline(longAgo)
		<-done
		h.c.SetReadDeadline(time.Time{})
	}
}

// closeWriteAndDrain closes c after a response, without the reset that
// closing with unread request bytes would send (and that can destroy the
// response in flight): as net/http, it half-closes and reads a little
// while first.
func closeWriteAndDrain(c *conn) {
	c.CloseWrite()
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.CopyN(io.Discard, c.Conn, maxDiscard)
}
