package httpproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"
	"unsafe"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
	"github.com/veneermesh/veneer/pkg/datapath/loop"
	"github.com/veneermesh/veneer/pkg/datapath/looptls"
	"github.com/veneermesh/veneer/pkg/datapath/proxy"
	"github.com/veneermesh/veneer/pkg/decor/retry"
	"github.com/veneermesh/veneer/pkg/mesh/mtls"
)

// The loop's HTTP path: a client connection the proxy found to carry
// HTTP/1 stays on the event loop that accepted it, as a session. Its
// requests are parsed in place (pkg/datapath/http1), run through their route's
// decorations (pkg/decor) and forwarded over the loop's own keep-alive
// connections to the app, bodies streamed both ways and re-framed, every
// wait a socket edge or a loop timer. No goroutine, no net/http type.
//
// Every HTTP/1 request is served here: a proxy's (a URL as its target, or
// CONNECT), an Upgrade with or without a body, Expect (100-continue is
// answered by the agent, anything else with 417). An Upgrade the app takes
// (its 101), or a CONNECT it takes (its 2xx), turns the connection into a
// tunnel on the loop: bytes both ways, as a connection forwarded as TCP.
// Only HTTP/2's preface (h2c) leaves the loop, for net/http's HTTP/2
// server, with the bytes read so far (handOff).

// phase is where a session stands; each has its own deadline on timer.
type phase uint8

const (
	reading    phase = iota // waiting for a request head, or reading one
	holding                 // a decoration's delay (a fault), or a retry's backoff
	connecting              // a non-blocking connect to the app
	exchanging              // the request to the app, its response to the client
	lingering               // closing: the write side shut, the client's last bytes read off
	tunneling               // after a 101, or a 2xx to CONNECT: bytes both ways until both ends close
)

// lingerFor is how long a closing connection reads off what the client
// still sends, so that closing with unread bytes does not reset the
// response in flight (net/http's server does the same).
const lingerFor = 500 * time.Millisecond

// session is one client connection on the loop.
type session struct {
	s       *Server
	ls      *loopState
	l       *loop.Loop
	client  loop.Socket
	app     *upConn // serving the current request; nil between requests
	peer    netip.AddrPort
	dst     netip.AddrPort
	prepare func(fd int, ipv6 bool) error
	closed  func(received, sent int64, end string)
	// tls: the client is a meshed peer whose TLS ended on client's layer,
	// its verified ID principal (inbound), or the app is one (outbound).
	tls       bool
	principal string
	appKey    appKey                    // the app's pooled connections: dst, the mTLS configuration to reach it, and the session when they are its own
	handshook func(tls.ConnectionState) // counts a handshake with the app
	header    []byte                    // the PROXY protocol header every new connection to the app starts with; nil: none
	dialOwn   func(context.Context) (net.Conn, error)

	received, sent int64 // bytes from and to the client
	phase          phase
	epoch          int        // bumped by every enter: advance runs on while it moves
	timer          loop.Timer // the phase's deadline
	expired        bool       // timer's time came; the phase says what that means
	reqTimer       loop.Timer // the route's request timeout, until the response head
	served         bool       // a request was answered: the next waits under the idle timeout
	begun          bool       // the next head's first bytes arrived
	closing        bool       // the connection closes after this response
	done           bool

	in buffer // the client's bytes; in[head:floor] the request's head

	// The response is read from the app into rin, its head kept there for
	// the exchange's life.
	rin buffer

	ex exchange.Exchange // the exchange's record, for the decorations: begin resets it
	exchangeState

	// The tunnel after a 101 or a 2xx to CONNECT: client to app, app to client.
	up, down loop.Flow
	preUp    int64      // bytes of up that came with the request head, counted already
	again    loop.Timer // another turn for a flow that yielded
}

// exchangeState is what one exchange of a session keeps: begin starts it,
// finish clears it whole (reset).
type exchangeState struct {
	req      http1.Head
	reqH     http1.Header
	nominate []http1.Span // the fields the request's Connection names
	// authority: the request's target was a URL, whose host goes to the
	// app as the Host field (the target as its path). connect: CONNECT.
	authority []byte
	connect   bool
	rt        *route
	wentOn    int              // the decorations whose Request let it go on
	hold      exchange.Verdict // what follows a delay
	retrying  bool             // a retry's backoff, counted in the budget
	attempt   int              // retries so far
	counted   bool             // the route's retrier counts this request in flight
	open      bool             // the exchange began and its Done hooks have not run

	// The request to the app: the PROXY protocol header on a new
	// connection, the head (kept whole, to be sent again on a fresh
	// connection), then the body, re-framed when chunked.
	hdr       []byte // what of the header is still to be sent
	out       []byte // the head
	outOff    int
	frame     []byte // chunk framing and re-framed chunks, pending
	frameOff  int
	reqLeft   int64 // Content-Length body bytes still to forward
	chunked   bool
	reqDec    http1.Chunked
	reqDone   bool // the whole body went to the app (or there is none)
	sentAt    time.Time
	upBytes   bool // a body byte went to the app: the request cannot be sent again
	upStop    bool // writing to the app failed: only its response is read now
	expect    bool // the client waits for 100 Continue before its body
	continued bool // the agent sent it

	// The response.
	resp         http1.Head
	respH        http1.Header
	respNominate []http1.Span // the fields the response's Connection names
	respGot      bool         // the app's final head arrived
	headSent     bool         // a final head went to the client
	respDone     bool         // the whole body is in cout (or sent)
	mode         bodyMode
	respLeft     int64
	respDec      http1.Chunked
	chunkOut     bool   // the body goes to the client chunked (re-framed)
	drop         bool   // a replacement body went: the app's is not read
	appKeep      bool   // the app's connection may serve another request
	cout         []byte // for the client: heads, framing, the agent's answers
	coutOff      int
	switched     bool // the app took the Upgrade (or CONNECT): a tunnel once its head is out
}

// reset clears e whole for the next exchange, keeping the memory of its
// slices (but a large answer's or body's).
func (e *exchangeState) reset() {
	next := exchangeState{req: e.req, reqH: e.reqH, nominate: e.nominate[:0], out: e.out[:0], frame: small(e.frame),
		reqDec: e.reqDec, resp: e.resp, respH: e.respH, respNominate: e.respNominate[:0], respDec: e.respDec, cout: small(e.cout)}
	next.req.Reset()
	next.resp.Reset()
	next.reqH.Reset(nil, nil)
	next.respH.Reset(nil, nil)
	next.reqDec.Reset()
	next.respDec.Reset()
	*e = next
}

// small is b emptied, or nil when it grew large: not kept for the
// connection's life.
func small(b []byte) []byte {
	if cap(b) > 64<<10 {
		return nil
	}
	return b[:0]
}

// bodyMode is how a response's body is delimited.
type bodyMode uint8

const (
	noBody    bodyMode = iota
	byLength           // Content-Length
	byChunks           // chunked
	byClosing          // to the app's close
)

// requestTimer is a session seen by its request timeout.
type requestTimer session

func (r *requestTimer) Expire() { (*session)(r).requestTimedOut() }

// tunnelAgain is a session seen by its again timer: a flow of its tunnel
// yielded on the last turn, and pumps on now.
type tunnelAgain session

func (t *tunnelAgain) Expire() { (*session)(t).advance() }

// ServeLoop serves an HTTP connection on the loop that accepted it.
func (s *Server) ServeLoop(c proxy.LoopConn) {
	ls := s.loopOf(c.Loop)
	x := &session{s: s, ls: ls, l: c.Loop, client: c.Client, peer: c.Peer, dst: c.Dst, prepare: c.Prepare, closed: c.Closed,
		tls: c.TLS, principal: c.Principal, appKey: appKey{dst: c.Dst, tls: c.Upstream}, handshook: c.Handshook,
		header: c.Header, dialOwn: c.Dial}
	if c.Own {
		x.appKey.own = x
	}
	x.timer.SetExpirer(x)
	x.reqTimer.SetExpirer((*requestTimer)(x))
	x.again.SetExpirer((*tunnelAgain)(x))
	c.Loop.Own(c.Client.FD, x)
	if c.App.FD >= 0 {
		// Dialled while sniffing: the first request's.
		// Pooled, so that it is watched and timed like any idle one.
		a := ls.newApp(c.App, x.appKey)
		ls.put(a)
		a.used = false
	}
	if len(c.Pre) > 0 {
		x.in.room(ls)
		x.in.end = copy(x.in.b, c.Pre)
		x.received = int64(x.in.end)
	}
	ls.sessions[x] = struct{}{}
	s.liveCount.Add(1)
	x.enter(reading)
	x.advance()
}

func (x *session) Ready(fd int, ev loop.Events) {
	switch {
	case fd == x.client.FD:
		x.client.Note(ev)
	case x.app != nil && fd == x.app.sock.FD:
		x.app.sock.Note(ev)
	default:
		return
	}
	x.advance()
}

func (x *session) Expire() {
	x.expired = true
	x.advance()
}

// enter starts phase p, with no deadline yet.
func (x *session) enter(p phase) {
	x.phase = p
	x.epoch++
	x.l.Disarm(&x.timer)
	x.expired = false
}

// arm sets the phase's deadline d from now, unless set already.
func (x *session) arm(d time.Duration) {
	if !x.timer.Armed() && !x.expired {
		x.l.Arm(&x.timer, x.l.Now().Add(d))
	}
}

// advance runs the session's phases until one waits for a socket or a
// timer, or the session ends.
func (x *session) advance() {
	for !x.done {
		e := x.epoch
		switch x.phase {
		case reading:
			x.readHead()
		case holding:
			if x.expired {
				x.held()
			} else if x.client.PeerShut || x.client.Broken {
				x.clientGone()
			}
		case connecting:
			x.connected()
		case exchanging:
			x.exchange()
		case lingering:
			x.linger()
		case tunneling:
			x.tunnel()
		}
		if x.epoch == e {
			return
		}
	}
}

// readHead reads the next request's head and begins its exchange.
func (x *session) readHead() {
	for {
		if x.in.end > x.in.off {
			buf := x.in.pending()
			if n := min(len(buf), len(h2Preface)); n >= 4 && bytes.Equal(buf[:n], h2Preface[:n]) {
				x.handOff() // HTTP/2 with prior knowledge (h2c)
				return
			}
			n, err := x.req.ParseRequest(buf, http1.DefaultLimits)
			if err != nil {
				x.malformed(err)
				return
			}
			if n > 0 {
				x.begin(n)
				return
			}
		}
		if x.expired {
			x.close(false) // the header or idle timeout: closed quietly, as net/http does
			return
		}
		if x.client.Read == loop.Waiting {
			if x.in.empty() {
				x.in.release(x.ls) // an idle connection holds no buffer
			}
			switch {
			case x.in.end > x.in.off && !x.begun:
				x.begun = true
				x.l.Disarm(&x.timer)
				x.arm(x.s.headerTimeout)
			case !x.served:
				x.arm(x.s.headerTimeout)
			default:
				if d := time.Duration(x.s.idle.Load()); d > 0 {
					x.arm(d)
				}
			}
			return
		}
		room := x.in.room(x.ls)
		if room == nil {
			x.malformed(&http1.Error{Status: 431, Why: "request head too large"})
			return
		}
		n, err := loop.Read(&x.client, room)
		if err != nil {
			x.close(false) // the client closed, or broke the connection, between requests
			return
		}
		x.in.end += n
		x.received += int64(n)
	}
}

var h2Preface = []byte("PRI * HTTP/2.0\r\n")

// begin starts the exchange of the head in[inOff:inOff+n].
func (x *session) begin(n int) {
	h := &x.req
	buf := x.in.b[x.in.off : x.in.off+n]
	method := h.Method.Of(buf)
	target, path, err := x.target(h, buf, method)
	if err != nil {
		x.malformed(err)
		return
	}
	x.in.keep(n)
	x.reqH.Reset(buf, h.Fields)
	x.nominate = h.Nominated(buf, x.nominate[:0])

	ex := &x.ex
	ex.Reset()
	ex.Start = time.Now()
	ex.Direction, ex.Port, ex.Client, ex.Upstream = x.s.direction, x.dst.Port(), x.peer, x.dst
	ex.TLS, ex.Principal = x.tls, x.principal
	ex.Method, ex.Path, ex.Target = methodName(method), path, view(target)
	ex.Host, ex.Proto = view(h.Host.Of(buf)), protos[h.Minor]
	if x.authority != nil {
		ex.Host = view(x.authority)
	}
	ex.UserAgent, ex.ForwardedFor = x.reqH.Get("User-Agent"), x.reqH.Get("X-Forwarded-For")
	ex.Request = &x.reqH
	x.rt = x.s.table.Load().route(ex.Port, path)
	ex.Route, ex.ConnectTimeout = x.rt.prefix, x.rt.connect

	x.closing = h.Close || x.s.draining.Load()
	x.reqLeft, x.chunked = max(h.Length, 0), h.Chunked
	x.reqDone = !x.chunked && x.reqLeft == 0
	x.expect = h.Expect == http1.ExpectContinue && !x.reqDone
	x.begun = false
	x.open = true
	if h.Expect == http1.ExpectOther {
		// RFC 9110 §10.1.1: an expectation the agent cannot meet. The body
		// is not read, so the connection closes after the answer.
		x.reply(exchange.Refusal(http.StatusExpectationFailed, "the request's Expect is not 100-continue"), x.rt.chain.Observers())
		return
	}
	var v exchange.Verdict
	x.wentOn, v = x.rt.chain.Request(ex, 0)
	x.verdict(v)
}

// target reads the request target of the head h in buf: the target sent
// to the app, and the path its route and decorations see. A path (or *)
// goes as it came. A URL (absolute form, a proxy's request) goes as its
// path and query, its host standing for the Host field (x.authority), as
// RFC 9112 §3.2.2 has an origin server read it. CONNECT's host:port goes as
// it came, to an app that is a proxy: its 2xx makes the connection a
// tunnel (tunnel_linux.go).
func (x *session) target(h *http1.Head, buf, method []byte) (target []byte, path string, err error) {
	target = h.Target.Of(buf)
	x.authority, x.connect = nil, string(method) == "CONNECT"
	switch {
	case x.connect && (h.Form != http1.Authority || !http1.ValidAuthority(target)):
		return nil, "", &http1.Error{Status: 400, Why: "CONNECT's target is not a host and a port"}
	case x.connect && (h.Length > 0 || h.Chunked):
		return nil, "", &http1.Error{Status: 400, Why: "a CONNECT request with a body"}
	case x.connect:
		return target, "", nil
	case h.Form == http1.Asterisk:
		return target, "*", nil
	case h.Form == http1.Absolute:
		authority, rest, e := http1.SplitAbsolute(target)
		if e != nil {
			return nil, "", e
		}
		x.authority, target = authority, rest
		if len(rest) == 0 || rest[0] == '?' {
			target = append([]byte{'/'}, rest...) // a URL without a path: rare enough to allocate
		}
	}
	if path, err = requestPath(target); err != nil {
		return nil, "", &http1.Error{Status: 400, Why: "the request target's path is not valid"}
	}
	return target, path, nil
}

var protos = [2]string{"HTTP/1.0", "HTTP/1.1"}

// view is b as a string without a copy: valid while b's buffer holds the
// exchange's head (http1.Header says the same of its values).
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// methodName is the method as a string without a copy for the usual ones.
func methodName(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "OPTIONS":
		return "OPTIONS"
	}
	return string(m)
}

// requestPath is an origin-form target's path, decoded as net/http's
// URL.Path is: a view into the head when there is nothing to decode.
func requestPath(target []byte) (string, error) {
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	if bytes.IndexByte(target, '%') < 0 {
		return view(target), nil
	}
	return url.PathUnescape(string(target))
}

// verdict carries out what the decorations decided.
func (x *session) verdict(v exchange.Verdict) {
	switch {
	case v.Delay > 0:
		x.hold = v
		x.enter(holding)
		x.arm(v.Delay)
	case v.Status != 0:
		x.reply(v, x.wentOn)
	default:
		x.forward()
	}
}

// held: a delay is over. A retry's backoff dials again; a decoration's
// delay goes on with its verdict, or with the decorations after it.
func (x *session) held() {
	if x.retrying {
		x.retrying = false
		x.rt.retry.Release()
		x.dial()
		return
	}
	if x.hold.Status != 0 {
		x.reply(x.hold, x.wentOn)
		return
	}
	var v exchange.Verdict
	x.wentOn, v = x.rt.chain.Request(&x.ex, x.wentOn+1)
	x.verdict(v)
}

// forward sends the request to the app.
func (x *session) forward() {
	x.out = x.appendRequestHead(x.out[:0])
	if x.rt.request > 0 {
		x.l.Arm(&x.reqTimer, x.l.Now().Add(x.rt.request))
	}
	if x.rt.retry != nil {
		x.rt.retry.Begin()
		x.counted = true
	}
	x.sentAt = time.Now()
	x.dial()
}

// appendRequestHead is the request's head as it goes to the app: its
// fields as the client spelled them and the decorations changed them, less
// the client's connection's own; HTTP/1.1, kept alive, re-framed.
func (x *session) appendRequestHead(b []byte) []byte {
	h, buf := &x.req, x.in.kept()
	b = append(b, h.Method.Of(buf)...)
	b = append(b, ' ')
	b = append(b, x.ex.Target...)
	b = append(b, " HTTP/1.1\r\n"...)
	switch {
	case x.authority != nil:
		b = append(b, "Host: "...)
		b = append(b, x.authority...)
		b = append(b, '\r', '\n')
	case h.Host.Len() == 0:
		// HTTP/1.0 without Host: the app's address.
		b = append(b, "Host: "...)
		b = x.dst.AppendTo(b)
		b = append(b, '\r', '\n')
	}
	b = x.reqH.AppendFields(b, x.skipRequestField)
	if x.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if te, ok := h.Field(buf, "te"); ok && bytes.Contains(bytes.ToLower(te), []byte("trailers")) {
		b = append(b, "Te: trailers\r\n"...)
	}
	if h.Upgrade {
		b = append(b, "Connection: Upgrade\r\n"...)
	}
	return append(b, '\r', '\n')
}

// skipRequestField leaves out of the request to the app the fields of the
// client's connection, its framing and Expect (the agent answers
// 100-continue itself); an Upgrade the client asks for goes on.
func (x *session) skipRequestField(name []byte) bool {
	if x.req.Upgrade && http1.FoldEqual(name, "upgrade") {
		return false
	}
	return http1.Rewritten(name) || http1.FoldEqual(name, "expect") || named(name, x.in.kept(), x.nominate) ||
		x.authority != nil && http1.FoldEqual(name, "host")
}

// dial takes a pooled connection to the app, or connects anew.
func (x *session) dial() {
	x.outOff, x.frame, x.frameOff, x.hdr = 0, x.frame[:0], 0, nil
	if a := x.ls.take(x.appKey); a != nil {
		x.app = a
		x.l.Own(a.sock.FD, x)
		x.enter(exchanging)
		return
	}
	fd, err := loop.Connect(x.dst, x.prepare)
	if err == nil {
		if err = x.l.Add(fd, x); err != nil {
			loop.Reset(fd)
		}
	}
	if err != nil {
		x.appFailed(true, "connecting to the app: "+err.Error())
		return
	}
	x.hdr = x.header
	x.app = x.ls.newApp(loop.Socket{FD: fd}, x.appKey)
	x.enter(connecting)
	x.arm(x.rt.connect)
}

// connected waits for the connect to end, and to a meshed peer for the
// mTLS handshake after it.
func (x *session) connected() {
	if hs, ok := x.app.sock.Layer.(*looptls.Conn); ok {
		x.secured(hs)
		return
	}
	switch {
	case x.expired:
		x.appFailed(true, "connecting to the app: timed out")
	case x.app.sock.Write == loop.Waiting:
		if x.client.PeerShut || x.client.Broken {
			x.clientGone()
		}
	case x.app.sock.Broken:
		err := loop.SocketError(x.app.sock.FD)
		why := "connecting to the app: the connection broke"
		if err != nil {
			why = "connecting to the app: " + err.Error()
		}
		x.appFailed(true, why)
	case x.appKey.tls != nil:
		hs := looptls.Client(x.l, &x.app.sock, x.appKey.tls)
		x.app.sock.Layer = hs
		x.l.Disarm(&x.timer)
		x.expired = false
		x.secured(hs)
	default:
		x.enter(exchanging)
	}
}

// secured waits for the mTLS handshake with a meshed peer, within its
// timeout. A failure fails the request as a failed connect does: the
// peer never gets plaintext.
func (x *session) secured(hs *looptls.Conn) {
	switch hs.State() {
	case looptls.Handshaking:
		if x.expired {
			x.appFailed(true, "the mTLS handshake with the peer: timed out")
		} else if x.client.PeerShut || x.client.Broken {
			x.clientGone()
		} else {
			x.arm(mtls.HandshakeTimeout)
		}
	case looptls.Failed:
		x.s.log.Warn().Err(hs.Err()).Stringer("original_dst", x.dst).Msg("mTLS handshake with a meshed peer failed; not sending it plaintext")
		x.appFailed(true, "the mTLS handshake with the peer: "+hs.Err().Error())
	default:
		cs := hs.ConnectionState()
		x.handshook(cs)
		x.app.until = mtls.ValidUntil(cs.PeerCertificates)
		x.enter(exchanging)
	}
}

// dropApp closes the connection serving the request, if any.
func (x *session) dropApp() {
	if x.app != nil {
		x.l.CloseSocket(&x.app.sock, false)
		x.app = nil
	}
	x.rin.release(x.ls)
}

// appFailed: the app could not take or answer the request (nothing of a
// response came). The request goes again on a fresh connection when a
// pooled one closed under it, or as the route's retries allow; else the
// agent answers in the app's place.
func (x *session) appFailed(connect bool, why string) {
	reused := x.app != nil && x.app.used
	x.dropApp()
	x.resp.Reset()
	// Only what may be sent twice (RFC 9110 9.2.2): the app may have
	// acted on the request before it closed.
	replayable := !x.upBytes && !x.expect && x.reqDone && retry.Idempotent(x.ex.Method)
	if reused && !connect && replayable {
		x.dial() // a keep-alive connection the app closed as the request went: not the app failing
		return
	}
	if x.retry(connect, !connect, 0) {
		return
	}
	x.ex.SetFailure(why)
	if connect {
		x.reply(exchange.Unreachable, x.wentOn)
	} else {
		x.reply(exchange.ClosedEarly, x.wentOn)
	}
}

// retry starts a retry's backoff when the route's policy asks for one,
// and says whether it did.
func (x *session) retry(connect, reset bool, status int) bool {
	r := x.rt.retry
	if r == nil || !r.Retriable(x.ex.Method, !x.reqDone || x.upBytes || x.req.Length > 0 || x.chunked, false) ||
		!r.Wants(connect, reset, status) {
		return false
	}
	ok, exhausted := r.Allow(x.attempt)
	if exhausted {
		x.ex.AddFlag(exchange.RetriesExhausted)
	}
	if !ok {
		return false
	}
	x.dropApp()
	x.resp.Reset()
	x.attempt++
	x.retrying = true
	x.enter(holding)
	x.arm(r.Backoff(x.attempt - 1))
	return true
}

// requestTimedOut: the app did not answer within the route's request
// timeout.
func (x *session) requestTimedOut() {
	if x.done || x.respGot {
		return
	}
	if x.retrying {
		x.retrying = false
		x.rt.retry.Release()
	}
	x.dropApp()
	x.ex.SetFailure("request timeout")
	x.reply(exchange.TimedOut, x.wentOn)
	x.advance()
}

// clientGone: the client left before its answer; logged 499 DC.
func (x *session) clientGone() {
	x.ex.AddFlag(exchange.DownstreamReset)
	x.ex.Status = 499
	x.respH.Reset(nil, nil)
	x.ex.Response = &x.respH
	x.rt.chain.Response(&x.ex, x.wentOn)
	x.endExchange()
	x.close(false)
}

// malformed answers a head the agent refuses, and closes the connection.
func (x *session) malformed(err error) {
	e, ok := err.(*http1.Error)
	if !ok {
		e = &http1.Error{Status: 400, Why: err.Error()}
	}
	ex := &x.ex
	ex.Reset()
	ex.Start = time.Now()
	ex.Direction, ex.Port, ex.Client, ex.Upstream = x.s.direction, x.dst.Port(), x.peer, x.dst
	ex.TLS, ex.Principal = x.tls, x.principal
	ex.Method, ex.Path, ex.Target, ex.Proto = "-", "-", "-", "HTTP/1.1"
	x.rt = x.s.table.Load().route(ex.Port, "")
	x.in.forget()
	x.reqH.Reset(nil, nil)
	ex.Request = &x.reqH
	x.closing = true
	x.reqDone = false
	x.open = true
	x.reply(exchange.Refusal(e.Status, "malformed request: "+e.Why), x.rt.chain.Observers())
}

// reply answers v in the app's place (exchange's answer.go says how), after
// the Response hooks of the first wentOn decorations.
func (x *session) reply(v exchange.Verdict, wentOn int) {
	x.dropApp()
	x.l.Disarm(&x.reqTimer)
	ex := &x.ex
	ex.AddFlag(v.Flag)
	ex.Status = v.Status
	x.wentOn = wentOn
	x.respH.Reset(nil, nil)
	exchange.AnswerFields(v, x.respH.Set)
	ex.Response = &x.respH
	x.rt.chain.Response(ex, wentOn)
	body := exchange.AnswerBody(v)
	if ct, b, ok := ex.Replacement(); ok {
		x.respH.Set("Content-Type", ct)
		body = b
	}
	if !x.reqDone {
		x.closing = true // the body was not read: the connection cannot go on
	}
	x.appendWhole(v.Status, nil, nil, body)
	x.respGot = true
	x.enter(exchanging)
}

// handOff gives the connection to net/http's HTTP/2 server (h2.go), with
// what was read and not consumed replayed first: HTTP/2's preface came.
func (x *session) handOff() {
	pre := append([]byte(nil), x.in.pending()...)
	x.done = true
	x.l.Disarm(&x.timer)
	x.l.Disarm(&x.reqTimer)
	x.dropApp()
	x.in.release(x.ls)
	delete(x.ls.sessions, x)
	x.s.liveCount.Add(-1)
	if x.appKey.own != nil {
		x.ls.closeKey(x.appKey)
	}
	nc, err := x.l.Leave(&x.client)
	received, sent := x.received-int64(len(pre)), x.sent // the replay counts pre again
	if err != nil {
		x.s.log.Warn().Err(err).Stringer("client", x.peer).Msg("handing the connection to net/http failed")
		x.closed(received, sent, "http")
		return
	}
	closed := x.closed
	x.s.serveH2(&h2conn{Conn: nc, pre: pre, client: x.peer, dst: x.dst, tls: x.tls, principal: x.principal, dialOwn: x.dialOwn,
		closed: func(r, s int64, end string) { closed(received+r, sent+s, end) }})
}

// endExchange ends the exchange for the decorations: their Done hooks,
// and the retry budget's count.
func (x *session) endExchange() {
	if !x.open {
		return
	}
	x.open = false
	x.rt.chain.Done(&x.ex, x.wentOn)
	if x.counted {
		x.counted = false
		x.rt.retry.End()
	}
	if x.retrying {
		x.retrying = false
		x.rt.retry.Release()
	}
	x.l.Disarm(&x.reqTimer)
}

// finish ends an exchange whose response went out whole: the app's
// connection back to the pool when it can serve another request, and the
// client's next request read, unless the connection closes.
func (x *session) finish() {
	x.endExchange()
	if x.app != nil {
		if x.appKeep && x.reqDone && x.rin.off == x.rin.end {
			a := x.app
			x.app = nil
			x.rin.release(x.ls)
			x.ls.put(a)
		} else {
			x.dropApp()
		}
	}
	x.rin.release(x.ls)
	x.served = true
	x.exchangeState.reset()
	if x.closing {
		x.closeWrite()
		return
	}
	x.in.forget() // the head is no longer needed
	x.enter(reading)
}

// closeWrite ends a connection after its last response: the write side
// shut, then what the client still sends read off for a while.
func (x *session) closeWrite() {
	loop.ShutdownWrite(&x.client)
	x.enter(lingering)
	x.arm(lingerFor)
	x.linger()
}

func (x *session) linger() {
	for !x.expired {
		if x.client.Read == loop.Waiting {
			return
		}
		x.in.off, x.in.end = 0, 0 // what it sends now is dropped
		n, err := loop.Read(&x.client, x.in.room(x.ls))
		if err != nil {
			break
		}
		x.received += int64(n)
	}
	x.close(false)
}

// close ends the session, with an RST when reset.
func (x *session) close(reset bool) {
	if x.done {
		return
	}
	x.done = true
	x.l.Disarm(&x.timer)
	x.l.Disarm(&x.reqTimer)
	if x.phase == tunneling {
		x.settleTunnel()
	}
	if reset && x.app != nil {
		x.l.CloseSocket(&x.app.sock, true)
		x.app = nil
	}
	x.dropApp()
	if x.appKey.own != nil {
		x.ls.closeKey(x.appKey) // they carry this client's address, or its header
	}
	x.in.release(x.ls)
	x.l.CloseSocket(&x.client, reset)
	delete(x.ls.sessions, x)
	x.s.liveCount.Add(-1)
	x.closed(x.received, x.sent, "http")
}

// idle says whether the session waits for a request with nothing of one
// read: the drain may close it.
func (x *session) idle() bool { return x.phase == reading && x.in.empty() }
