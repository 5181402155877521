// Package upstream is HTTP/1.1 to the app on the caller's goroutine.
//
// net/http's Transport gives every connection a read and a write goroutine
// and hands each request to them over channels: three goroutine switches a
// request, which a CPU profile of the agent under wrk showed to cost more
// than all the decorations together. This Transport writes the request and
// reads the response on the goroutine that calls RoundTrip, over pooled
// keep-alive connections, and starts no goroutine at all. What it does not
// do (protocol upgrades, request bodies of unknown or large size, request
// trailers) it passes to a fallback RoundTripper, normally net/http's.
//
//	t := upstream.New(dial, idle, fallback)
//	resp, err := t.RoundTrip(req)  // req.URL.Host is the pool's key
//	t.CloseIdle()                  // at shutdown
package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/decor/retry"
)

// maxBody is the largest request body sent on this goroutine: one that
// fits the socket buffers, so that an app which answers before it reads
// the body cannot block the write for good. Larger bodies, and those of
// unknown length, go to the fallback, which writes and reads concurrently.
const maxBody = 64 << 10

// maxIdle bounds the idle connections kept per destination, as high as
// the agent's net/http Transport: closing the surplus after a burst leaves
// TIME_WAITs that use up the agent's source ports under churn.
const maxIdle = 1 << 16

// Dial opens a connection to addr ("host:port") on network ("tcp"), as
// net.Dialer's DialContext and http.Transport's DialContext do.
type Dial func(ctx context.Context, network, addr string) (net.Conn, error)

// Transport is an http.RoundTripper for HTTP/1.1 to plain-text upstreams.
type Transport struct {
	dial     Dial
	idle     time.Duration // how long a pooled connection may idle; 0: forever
	fallback http.RoundTripper
	pools    sync.Map // addr -> *pool

	// GotConn, when set, is called with each connection a request is about
	// to be sent on, the fallback's included: the hook of an
	// httptrace.ClientTrace, without a context and a request copy per
	// request to install it.
	GotConn func(req *http.Request, c net.Conn)

	// Got1xx, when set, is called with each informational response (100
	// Continue, 103 Early Hints) to a request this Transport sends itself,
	// instead of the request's httptrace.ClientTrace: the hook without a
	// context per request. An error ends the exchange.
	Got1xx func(req *http.Request, code int, h http.Header) error
}

// New returns a Transport that opens connections with dial, closes pooled
// ones idle for longer than idle, and passes what it does not do to
// fallback.
func New(dial Dial, idle time.Duration, fallback http.RoundTripper) *Transport {
	return &Transport{dial: dial, idle: idle, fallback: fallback}
}

// RoundTrip sends req and reads the head of its response; the body is read
// from the app as the caller reads it, and the connection goes back to the
// pool once the body ended, or is closed when the body is closed early.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !Owns(req) {
		if t.GotConn != nil {
			in := req
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotConn: func(i httptrace.GotConnInfo) { t.GotConn(in, i.Conn) }}))
		}
		return t.fallback.RoundTrip(req)
	}
	p := t.pool(req.URL.Host)
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		pc, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		if t.GotConn != nil {
			t.GotConn(req, pc.conn)
		}
		if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.GotConn != nil {
			tr.GotConn(httptrace.GotConnInfo{Conn: pc.conn, Reused: pc.reused, WasIdle: pc.reused})
		}
		resp, err := pc.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		pc.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A pooled connection the app closed just as it was taken: send
		// again, on a new connection, what can be sent again.
		if attempt == 0 && pc.reused && closedUnanswered(err) && replayable(req) {
			continue
		}
		return nil, err
	}
}

// CloseIdle closes every pooled connection; connections in use are closed
// when their responses end.
func (t *Transport) CloseIdle() {
	t.pools.Range(func(_, v any) bool {
		v.(*pool).closeAll()
		return true
	})
}

func (t *Transport) pool(addr string) *pool {
	if p, ok := t.pools.Load(addr); ok {
		return p.(*pool)
	}
	p, _ := t.pools.LoadOrStore(addr, newPool(t, addr))
	return p.(*pool)
}

// Owns reports whether a Transport sends req itself rather than through
// its fallback.
func Owns(req *http.Request) bool {
	if req.URL.Scheme != "http" || len(req.Trailer) > 0 {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && (req.ContentLength <= 0 || req.ContentLength > maxBody) {
		return false
	}
	for k := range req.Header { // keys may be respelled: compare without case
		if len(k) == len("Upgrade") && strings.EqualFold(k, "Upgrade") {
			return false
		}
	}
	return true
}

// replayable: a request that may be sent twice (RFC 9110 9.2.2), with no
// body that was already consumed.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	return retry.Idempotent(req.Method)
}

// closedUnanswered: the connection ended before a byte of the response.
func closedUnanswered(err error) bool {
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// poolShards splits each pool so that requests to one app (for inbound
// traffic, every request) do not all take one lock.
const poolShards = 8

// pool holds the idle connections to one address in shards. A connection
// belongs to one shard (picked at random when it is opened) and goes back
// to it; get starts at a random shard and takes from the first that has
// one.
type pool struct {
	t      *Transport
	addr   string
	shards [poolShards]shard
}

// shard holds some of a pool's idle connections, the most recently used
// last: it is taken first, and the oldest idle ones are swept from the
// front.
type shard struct {
	p     *pool
	mu    sync.Mutex
	idle  []*conn
	sweep *time.Timer
}

func newPool(t *Transport, addr string) *pool {
	p := &pool{t: t, addr: addr}
	for i := range p.shards {
		p.shards[i].p = p
	}
	return p
}

// idleCount is the number of pooled connections.
func (p *pool) idleCount() int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		n += len(s.idle)
		s.mu.Unlock()
	}
	return n
}

func (p *pool) get(ctx context.Context) (*conn, error) {
	first := rand.N(poolShards) // per-P state: no shared word written
	for i := range poolShards {
		s := &p.shards[(first+i)%poolShards]
		for pc := s.pop(); pc != nil; pc = s.pop() {
			if pc.alive() {
				pc.reused = true
				return pc, nil
			}
			pc.close()
		}
	}
	c, err := p.t.dial(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return newConn(c, &p.shards[rand.N(poolShards)]), nil
}

// pop takes the most recently pooled connection, or nil.
func (s *shard) pop() *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.idle)
	if n == 0 {
		return nil
	}
	pc := s.idle[n-1]
	s.idle[n-1] = nil
	s.idle = s.idle[:n-1]
	return pc
}

func (s *shard) put(pc *conn) {
	pc.since = time.Now()
	s.mu.Lock()
	if len(s.idle) >= maxIdle/poolShards {
		s.mu.Unlock()
		pc.close()
		return
	}
	s.idle = append(s.idle, pc)
	if s.sweep == nil {
		s.sweep = time.AfterFunc(sweepEvery, s.sweepIdle)
	}
	s.mu.Unlock()
}

// sweepEvery is how often idle connections are checked: those the app
// closed (net/http notices at once, with a goroutine per connection
// reading ahead) and those idle for longer than the idle timeout are
// closed within this time.
const sweepEvery = time.Second

// sweepIdle closes the idle connections the app closed and those idle for
// too long, and comes back while any are left.
func (s *shard) sweepIdle() {
	type idleConn struct {
		pc    *conn
		since time.Time
	}
	s.mu.Lock()
	snap := make([]idleConn, len(s.idle))
	for i, pc := range s.idle {
		snap[i] = idleConn{pc, pc.since}
	}
	s.mu.Unlock()
	// Checked without the lock: a connection taken meanwhile is checked
	// again by get, and only those still idle below are closed.
	dead := map[*conn]bool{}
	for _, c := range snap {
		if s.p.t.idle > 0 && time.Since(c.since) > s.p.t.idle || !c.pc.peekAlive(new([1]byte)) {
			dead[c.pc] = true
		}
	}
	var closing []*conn
	s.mu.Lock()
	s.idle = slices.DeleteFunc(s.idle, func(pc *conn) bool {
		if dead[pc] {
			closing = append(closing, pc)
			return true
		}
		return false
	})
	if len(s.idle) > 0 {
		s.sweep.Reset(sweepEvery)
	} else {
		s.sweep = nil
	}
	s.mu.Unlock()
	for _, pc := range closing {
		pc.close()
	}
}

func (p *pool) closeAll() {
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		old := s.idle
		s.idle = nil
		s.mu.Unlock()
		for _, pc := range old {
			pc.close()
		}
	}
}

// conn is one connection to the app with its buffers.
type conn struct {
	conn   net.Conn
	raw    syscall.RawConn // for the liveness check; nil when not a socket
	br     *bufio.Reader
	bw     *bufio.Writer
	home   *shard    // the pool shard it goes back to
	since  time.Time // idle since
	reused bool
	peek   [1]byte
}

func newConn(c net.Conn, home *shard) *conn {
	pc := &conn{conn: c, home: home, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}
	if sc, ok := c.(syscall.Conn); ok {
		pc.raw, _ = sc.SyscallConn()
	}
	return pc
}

func (pc *conn) close() { pc.conn.Close() }

// alive reports whether an idle connection can take a request: the app
// has neither closed it nor sent anything unasked (a 408, say) on it. One
// non-blocking peek, instead of a goroutine per connection reading ahead
// as net/http does.
func (pc *conn) alive() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	return pc.peekAlive(&pc.peek)
}

// peekAlive is alive's socket check alone, into buf.
func (pc *conn) peekAlive(buf *[1]byte) bool {
	if pc.raw == nil {
		return true
	}
	ok := false
	pc.raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n < 0 && err == syscall.EAGAIN
		return true
	})
	return ok
}

// aLongTimeAgo, as a deadline, fails a blocked read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// maxInformational bounds the 1xx responses taken before the final one.
const maxInformational = 8

func (pc *conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { pc.conn.SetDeadline(aLongTimeAgo) })
	resp, err := pc.exchange(req)
	if err != nil {
		stop()
		return nil, err
	}
	if resp.Body == http.NoBody {
		pc.release(stop, !resp.Close)
		return resp, nil
	}
	resp.Body = &body{rc: resp.Body, pc: pc, stop: stop, keep: !resp.Close}
	return resp, nil
}

func (pc *conn) exchange(req *http.Request) (*http.Response, error) {
	if err := req.Write(pc.bw); err != nil {
		return nil, fmt.Errorf("writing the request to the app: %w", err)
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, fmt.Errorf("writing the request to the app: %w", err)
	}
	// ReadResponse calls an end before the status line unexpected; told
	// apart here (with a reset), it is a pooled connection the app had
	// closed, and the request may be sent again: closedUnanswered.
	if _, err := pc.br.Peek(1); err == io.EOF {
		return nil, io.EOF // compared as is
	} else if err != nil {
		return nil, fmt.Errorf("reading the app's response: %w", err)
	}
	for range maxInformational {
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, fmt.Errorf("reading the app's response: %w", err)
		}
		if resp.StatusCode < 100 || resp.StatusCode > 199 {
			return resp, nil
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, errors.New("the app switched protocols on a request that asked for no upgrade")
		}
		// 100 Continue, 102, 103 Early Hints: passed on, as net/http does.
		if got1xx := pc.home.p.t.Got1xx; got1xx != nil {
			if err := got1xx(req, resp.StatusCode, resp.Header); err != nil {
				return nil, err
			}
		} else if tr := httptrace.ContextClientTrace(req.Context()); tr != nil && tr.Got1xxResponse != nil {
			if err := tr.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("the app sent more than %d informational responses", maxInformational)
}

// release pools the connection when it is fit for another request: its
// response read to the end, no Connection: close, and the request's
// context not cancelled (which sets a deadline in the past on it).
func (pc *conn) release(stop func() bool, keep bool) {
	if stop() && keep {
		pc.reused = false
		pc.home.put(pc)
		return
	}
	pc.close()
}

// body is a response body that gives its connection back when it ends.
type body struct {
	rc   io.ReadCloser
	pc   *conn
	stop func() bool
	keep bool
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.done = true
		b.pc.release(b.stop, b.keep && err == io.EOF)
	}
	return n, err
}

// Close before the end closes the connection: what is left of the body
// would have to be read before another response.
func (b *body) Close() error {
	if !b.done {
		b.done = true
		b.pc.release(b.stop, false)
	}
	return nil
}
