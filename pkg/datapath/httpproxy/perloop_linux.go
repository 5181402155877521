package httpproxy

import (
	"crypto/tls"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// loopState is what the HTTP path keeps per event loop, touched only on
// that loop: its sessions (for the drain), its idle keep-alive
// connections to the app, and the buffers its sessions borrow while bytes
// are in flight.
type loopState struct {
	s        *Server
	l        *loop.Loop
	sessions map[*session]struct{}
	idle     map[appKey][]*upConn // most recently used last
	bufs     [][]byte
}

// loopOf is l's state, made on the first session l serves.
func (s *Server) loopOf(l *loop.Loop) *loopState {
	if v, ok := s.loops.Load(l); ok {
		return v.(*loopState)
	}
	v, _ := s.loops.LoadOrStore(l, &loopState{s: s, l: l, sessions: map[*session]struct{}{}, idle: map[appKey][]*upConn{}})
	return v.(*loopState)
}

// eachLoop runs f on every loop the HTTP path serves, on that loop, and
// waits for it; a loop that stopped is skipped.
func (s *Server) eachLoop(f func(*loopState)) {
	var wg sync.WaitGroup
	s.loops.Range(func(_, v any) bool {
		ls := v.(*loopState)
		wg.Add(1)
		if !ls.l.Post(func() { f(ls); wg.Done() }) {
			wg.Done()
		}
		return true
	})
	wg.Wait()
}

// sessionBuf is a session's buffer each way: a head of the usual size whole,
// and a body in reads of this size. A head longer than it grows the
// buffer up to the head's bound.
const sessionBuf = 32 << 10

// idleBufs bounds the buffers a loop keeps for reuse.
const idleBufs = 256

func (ls *loopState) getBuf() []byte {
	if n := len(ls.bufs); n > 0 {
		b := ls.bufs[n-1]
		ls.bufs = ls.bufs[:n-1]
		return b
	}
	return make([]byte, sessionBuf)
}

func (ls *loopState) putBuf(b []byte) {
	if cap(b) == sessionBuf && len(ls.bufs) < idleBufs {
		ls.bufs = append(ls.bufs, b[:sessionBuf])
	}
}

// appKey is what a pooled connection to the app serves: its address, the
// mTLS configuration it was made with when the app is a meshed peer (nil:
// plaintext), and the session it belongs to when it must serve no other
// client (tproxy mode, the PROXY protocol; nil: shared). A reload makes
// new configurations, so connections made under the old ones are not
// reused, only idled out.
type appKey struct {
	dst netip.AddrPort
	tls *tls.Config
	own *session
}

// upConn is a connection to the app owned by a loop: serving one
// session's request, or idle in the loop's pool. An idle one is watched:
// the app closing it (RDHUP, or bytes it had no request for) closes it
// here at once, so a request is never sent on a connection already gone.
// Between meshed agents it carries mTLS, and is pooled across client
// connections as a plaintext one is: one handshake serves many requests.
type upConn struct {
	ls     *loopState
	sock   loop.Socket
	key    appKey
	timer  loop.Timer // the idle timeout, while pooled
	pooled bool
	used   bool // it served a request before: a close may cross the next
	// until: an mTLS connection is not taken for a request once the
	// peer's certificates it was verified with have expired (an SVID
	// lives an hour, or minutes); zero for plaintext.
	until time.Time
}

func (a *upConn) Ready(fd int, ev loop.Events) {
	a.sock.Note(ev)
	if ev&(loop.In|loop.RDHup|loop.Hup|loop.Err) != 0 && !a.quiet() {
		a.ls.drop(a)
	}
}

// quiet says whether an idle connection that became readable had nothing
// for the agent: TLS's own messages (a session ticket, a KeyUpdate), read
// by its layer. Bytes of the app's, its end, or an error are not.
func (a *upConn) quiet() bool {
	if a.sock.Layer == nil || a.sock.PeerShut || a.sock.Broken {
		return false
	}
	var b [1]byte
	n, err := loop.Read(&a.sock, b[:])
	return n == 0 && err == nil
}

// Expire: idle for the upstream idle timeout.
func (a *upConn) Expire() { a.ls.drop(a) }

// newApp is a connection for key, connected or connecting, registered on
// the loop by its caller.
func (ls *loopState) newApp(sock loop.Socket, key appKey) *upConn {
	a := &upConn{ls: ls, sock: sock, key: key}
	a.timer.SetExpirer(a)
	return a
}

// take is an idle connection for key, or nil.
func (ls *loopState) take(key appKey) *upConn {
	for {
		list := ls.idle[key]
		if len(list) == 0 {
			return nil
		}
		a := list[len(list)-1]
		list[len(list)-1] = nil
		ls.idle[key] = list[:len(list)-1]
		a.pooled = false
		ls.l.Disarm(&a.timer)
		if a.sock.PeerShut || a.sock.Broken || !a.until.IsZero() && !ls.l.Now().Before(a.until) {
			ls.l.CloseSocket(&a.sock, false)
			continue
		}
		return a
	}
}

// put pools a, which just served a request whole.
func (ls *loopState) put(a *upConn) {
	a.used, a.pooled = true, true
	ls.l.Own(a.sock.FD, a)
	ls.l.Arm(&a.timer, ls.l.Now().Add(ls.s.upstreamIdle))
	ls.idle[a.key] = append(ls.idle[a.key], a)
}

// drop closes a pooled connection, and forgets it.
func (ls *loopState) drop(a *upConn) {
	if !a.pooled {
		return
	}
	a.pooled = false
	ls.l.Disarm(&a.timer)
	list := ls.idle[a.key]
	if i := slices.Index(list, a); i >= 0 {
		list = slices.Delete(list, i, i+1)
		if len(list) == 0 {
			delete(ls.idle, a.key)
		} else {
			ls.idle[a.key] = list
		}
	}
	ls.l.CloseSocket(&a.sock, false)
}

// closeKey closes the pooled connections for key (a session's own, when
// it ends).
func (ls *loopState) closeKey(key appKey) {
	for _, a := range slices.Clone(ls.idle[key]) {
		ls.drop(a)
	}
}

// closeIdle closes every pooled connection.
func (ls *loopState) closeIdle() {
	for _, list := range ls.idle {
		for _, a := range slices.Clone(list) {
			ls.drop(a)
		}
	}
}

// closeSessions closes the loops' sessions that wait for a request with
// nothing of one read (or all of them), and their idle connections to the
// app: the drain's part on the loops.
func (s *Server) closeSessions(all bool) {
	s.eachLoop(func(ls *loopState) {
		for x := range ls.sessions {
			if all || x.idle() {
				x.close(false)
			}
		}
		ls.closeIdle()
	})
}
