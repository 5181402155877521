package httpproxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// exchange moves the request to the app and the response to the client,
// each as far as its sockets take it: a full socket stops the side that
// fills it (backpressure), and nothing is read that cannot be passed on.
func (x *session) exchange() {
	if x.expired {
		x.expired = false
		x.bodyFailed("the client stalled in its request body")
		return
	}
	e := x.epoch
	if x.app != nil && !x.upStop && (!x.reqDone || len(x.hdr) > 0 || x.outOff < len(x.out) || x.frameOff < len(x.frame)) {
		x.sendUp()
		if x.done || x.epoch != e {
			return
		}
	}
	x.recvDown()
	if x.done || x.epoch != e {
		return
	}
	if x.respDone && x.coutOff == len(x.cout) {
		switch {
		case x.switched && x.upStop:
			x.abort(exchange.UpstreamReset)
			return
		case x.switched && x.reqDone:
			x.startTunnel()
			return
		case x.switched:
			return // the rest of the request's body goes first: the tunnel's bytes follow it
		}
		if !x.reqDone || x.upStop {
			// The app answered before it took the whole body: the rest
			// of it cannot be told from the next request.
			x.closing, x.appKeep = true, false
		}
		x.finish()
		return
	}
	if !x.headSent && x.reqDone && (x.client.PeerShut || x.client.Broken) && x.in.empty() {
		x.clientGone() // seen by its RDHUP while the app works
	}
}

// sendUp sends the request's head and body to the app.
func (x *session) sendUp() {
	a := &x.app.sock
	for {
		if len(x.hdr) > 0 {
			n, err := loop.Send(a, x.hdr)
			x.hdr = x.hdr[n:]
			if err != nil {
				x.upBroke(err)
				return
			}
			if len(x.hdr) > 0 {
				return
			}
		}
		if x.outOff < len(x.out) {
			n, err := loop.Send(a, x.out[x.outOff:])
			x.outOff += n
			if err != nil {
				x.upBroke(err)
				return
			}
			if x.outOff < len(x.out) {
				return
			}
		}
		if x.frameOff < len(x.frame) {
			n, err := loop.Send(a, x.frame[x.frameOff:])
			x.frameOff += n
			x.upBytes = x.upBytes || n > 0
			if err != nil {
				x.upBroke(err)
				return
			}
			if x.frameOff < len(x.frame) {
				return
			}
			x.frame, x.frameOff = x.frame[:0], 0
		}
		if x.reqDone {
			x.l.Disarm(&x.timer)
			return
		}
		if x.expect && !x.continued && x.in.empty() {
			// The client waits for this before its body; the app was not
			// asked (Expect is not forwarded), as for HTTP/2 (forwarder).
			x.continued = true
			x.cout = append(x.cout, "HTTP/1.1 100 Continue\r\n\r\n"...)
			return // recvDown sends it
		}
		if x.in.empty() {
			if x.client.Read == loop.Waiting {
				// Each wait for more of the body is bounded.
				x.l.Disarm(&x.timer)
				x.arm(x.s.bodyIdle)
				return
			}
			room := x.in.room(x.ls)
			if room == nil {
				x.bodyFailed("no room for the request body")
				return
			}
			n, err := loop.Read(&x.client, room)
			if err != nil {
				x.bodyFailed("the client closed its connection in its request body")
				return
			}
			x.in.end += n
			x.received += int64(n)
			continue
		}
		b := x.in.pending()
		if x.chunked {
			skip, n, err := x.reqDec.Next(b)
			if err != nil {
				x.bodyFailed(err.Error())
				return
			}
			x.frame = http1.AppendChunk(x.frame, b[skip:skip+n])
			x.in.off += skip + n
			x.ex.AddReceived(int64(n))
			if x.reqDec.Done() {
				x.frame = http1.AppendLast(x.frame, x.reqDec.Trailers())
				x.reqDone = true
			}
			continue
		}
		k := int(min(int64(len(b)), x.reqLeft))
		n, err := loop.Send(a, b[:k])
		x.in.off += n
		x.reqLeft -= int64(n)
		x.ex.AddReceived(int64(n))
		x.upBytes = x.upBytes || n > 0
		if err != nil {
			x.upBroke(err)
			return
		}
		if x.reqLeft == 0 {
			x.reqDone = true
		}
		if n < k {
			return
		}
	}
}

// upBroke: writing the request to the app failed. An app that answers
// early and closes (a 413 before the body) may have its response waiting:
// it is read and passed on. Else the app failed before answering.
func (x *session) upBroke(err error) {
	x.upStop = true
	if x.respGot || x.app.sock.Read == loop.Ready && !x.app.sock.Broken {
		return
	}
	x.appFailed(false, "sending the request to the app: "+err.Error())
}

// bodyFailed: the client's request body broke off, stalled or was
// malformed. Before the response began the agent answers 400 (the app got
// a cut request, which it cannot take for a whole one); after, the
// connection ends.
func (x *session) bodyFailed(why string) {
	x.ex.SetBodyErr(errors.New(why))
	x.ex.SetFailure(why)
	if x.headSent {
		x.abort(exchange.DownstreamReset)
		return
	}
	x.closing = true
	x.reply(exchange.BadBody, x.wentOn)
}

// recvDown reads the app's response and sends it to the client.
func (x *session) recvDown() {
	for {
		if x.coutOff < len(x.cout) {
			n, err := loop.Send(&x.client, x.cout[x.coutOff:])
			x.coutOff += n
			x.sent += int64(n)
			if err != nil {
				x.abort(exchange.DownstreamReset)
				return
			}
			if x.coutOff < len(x.cout) {
				return
			}
			x.cout, x.coutOff = x.cout[:0], 0
		}
		if x.respDone || x.app == nil {
			return
		}
		if !x.respGot {
			if x.rin.end > x.rin.off {
				n, err := x.resp.ParseResponse(x.rin.pending(), http1.DefaultLimits, x.ex.Method == "HEAD")
				if err != nil {
					x.badResponse(err.Error())
					return
				}
				if n > 0 {
					e := x.epoch
					x.gotHead(n)
					if x.epoch != e || x.done {
						return
					}
					continue
				}
			}
			if !x.readApp() {
				return
			}
			continue
		}
		if x.rin.off == x.rin.end {
			if !x.readApp() {
				return
			}
			continue
		}
		b := x.rin.pending()
		switch x.mode {
		case byLength:
			k := int(min(int64(len(b)), x.respLeft))
			n, err := loop.Send(&x.client, b[:k])
			x.rin.off += n
			x.respLeft -= int64(n)
			x.sent += int64(n)
			x.ex.Sent += int64(n)
			if err != nil {
				x.abort(exchange.DownstreamReset)
				return
			}
			if x.respLeft == 0 {
				x.respDone = true
			}
			if n < k {
				return
			}
		case byChunks:
			skip, n, err := x.respDec.Next(b)
			if err != nil {
				x.ex.SetFailure("the app's chunked body: " + err.Error())
				x.abort(exchange.UpstreamReset)
				return
			}
			x.body(b[skip : skip+n])
			x.rin.off += skip + n
			if x.respDec.Done() {
				if x.chunkOut {
					x.cout = http1.AppendLast(x.cout, x.respDec.Trailers())
				}
				x.respDone = true
			}
		case byClosing:
			x.body(b)
			x.rin.off = x.rin.end
		}
	}
}

// body queues data of the app's body for the client, re-framed as chunks
// when the response goes out chunked.
func (x *session) body(data []byte) {
	if len(data) == 0 {
		return
	}
	if x.chunkOut {
		x.cout = http1.AppendChunk(x.cout, data)
	} else {
		x.cout = append(x.cout, data...)
	}
	x.ex.Sent += int64(len(data))
}

// readApp reads more of the response; false when there is nothing to read
// now, or the exchange ended.
func (x *session) readApp() bool {
	a := &x.app.sock
	if a.Read == loop.Waiting {
		return false
	}
	room := x.rin.room(x.ls)
	if room == nil {
		x.badResponse("response head too large")
		return false
	}
	n, err := loop.Read(a, room)
	if err != nil {
		return x.appEnded(err)
	}
	x.rin.end += n
	return n > 0 || a.Read == loop.Ready
}

// appEnded: the app's connection ended (its FIN, or an error). It says
// whether the response goes on: one delimited by the close is complete.
func (x *session) appEnded(err error) bool {
	switch {
	case !x.respGot:
		x.appFailed(false, "the app closed the connection before answering")
		return false
	case x.mode == byClosing && err == io.EOF:
		x.respDone, x.appKeep = true, false
		if x.chunkOut {
			x.cout = http1.AppendLast(x.cout, nil)
		}
		return true
	}
	x.ex.SetFailure("the app's response broke off")
	x.abort(exchange.UpstreamReset)
	return false
}

// gotHead takes the response head rin[rinOff:rinOff+n]: an informational
// one is passed on (but 100 Continue, which the agent sent itself), a
// final one goes through the Response hooks and out, re-framed.
func (x *session) gotHead(n int) {
	h := &x.resp
	buf := x.rin.b[x.rin.off : x.rin.off+n]
	if h.Status < 200 {
		if h.Status == http.StatusSwitchingProtocols {
			if !x.req.Upgrade {
				x.badResponse("101 Switching Protocols to a request without Upgrade")
				return
			}
			x.switchProtocols(n)
			return
		}
		if h.Status != http.StatusContinue {
			x.respH.Reset(buf, h.Fields)
			x.cout = x.appendStatusLine(x.cout, h.Status, h.Reason.Of(buf))
			x.cout = x.respH.AppendFields(x.cout, http1.Rewritten)
			x.cout = append(x.cout, '\r', '\n')
		}
		x.rin.off += n
		h.Reset()
		return
	}
	x.l.Disarm(&x.reqTimer)
	if h.Status == http.StatusServiceUnavailable && x.retry(false, false, h.Status) {
		return
	}
	if x.connect && h.Status < 300 {
		x.switchProtocols(n) // RFC 9110 §9.3.6: the tunnel starts after the head; a body or framing it announces is ignored
		return
	}
	x.respGot = true
	ex := &x.ex
	ex.SetUpstreamTime(time.Since(x.sentAt))
	x.rin.keep(n)
	x.respH.Reset(buf, h.Fields)
	x.respNominate = h.Nominated(buf, x.respNominate[:0])
	switch {
	case h.Chunked:
		x.mode = byChunks
	case h.Length > 0:
		x.mode, x.respLeft = byLength, h.Length
	case h.Length == 0:
		x.mode = noBody
	default:
		x.mode = byClosing
	}
	x.appKeep = !h.Close
	ex.Status = h.Status
	ex.Response = &x.respH
	x.rt.chain.Response(ex, x.wentOn)
	if ct, body, ok := ex.Replacement(); ok {
		// An error page in the app's place: the app's body is not read,
		// and its connection not kept.
		for _, k := range []string{"Content-Encoding", "Content-Length", "Content-Range", "Etag", "Last-Modified"} {
			x.respH.Del(k)
		}
		x.respH.Set("Content-Type", ct)
		x.drop, x.appKeep = true, false
		x.appendWhole(h.Status, h.Reason.Of(buf), x.skipResponseField, body)
		return
	}
	if x.mode == byChunks || x.mode == byClosing {
		if x.req.Minor == 1 {
			x.chunkOut = true
		} else {
			x.closing = true // HTTP/1.0 has no chunks: the body ends with the connection
		}
	}
	x.cout = x.appendStatusLine(x.cout, h.Status, h.Reason.Of(buf))
	x.cout = x.respH.AppendFields(x.cout, x.skipResponseField)
	if x.chunkOut {
		x.cout = append(x.cout, "Transfer-Encoding: chunked\r\n"...)
	}
	x.cout = x.appendConnection(x.cout)
	x.cout = append(x.cout, '\r', '\n')
	x.headSent = true
	switch x.mode {
	case noBody:
		x.respDone = true
	case byLength:
		// What of the body came with the head goes out in the same write
		// when it is small: one syscall for the usual response, not two.
		if k := min(int64(x.rin.end-x.rin.off), x.respLeft); k <= withHead {
			x.cout = append(x.cout, x.rin.b[x.rin.off:x.rin.off+int(k)]...)
			x.rin.off += int(k)
			x.respLeft -= k
			x.ex.Sent += k
			x.respDone = x.respLeft == 0
		}
	}
}

// appendWhole queues a whole response for the client, one the agent made
// or whose body it replaced: the status line, the fields (but those skip
// names), its Content-Length and Connection, and the body (none to HEAD).
func (x *session) appendWhole(status int, reason []byte, skip func([]byte) bool, body []byte) {
	x.cout = x.appendStatusLine(x.cout, status, reason)
	x.cout = x.respH.AppendFields(x.cout, skip)
	x.cout = append(x.cout, "Content-Length: "...)
	x.cout = strconv.AppendInt(x.cout, int64(len(body)), 10)
	x.cout = append(x.cout, '\r', '\n')
	x.cout = x.appendConnection(x.cout)
	x.cout = append(x.cout, '\r', '\n')
	if x.ex.Method != "HEAD" {
		x.cout = append(x.cout, body...)
		x.ex.Sent += int64(len(body))
	}
	x.headSent, x.respDone = true, true
}

// withHead is the most of a Content-Length body copied behind its head,
// to go out in one write with it.
const withHead = 16 << 10

// skipResponseField leaves out of the response to the client the fields
// of the app's connection and its transfer coding (the agent frames the
// body for the client's connection).
func (x *session) skipResponseField(name []byte) bool {
	return http1.Rewritten(name) || named(name, x.rin.kept(), x.respNominate)
}

// named says whether name is among the field names at spans of buf (those
// a Connection field listed).
func named(name, buf []byte, spans []http1.Span) bool {
	for _, s := range spans {
		if bytes.EqualFold(name, s.Of(buf)) {
			return true
		}
	}
	return false
}

// badResponse: the app's response was not valid HTTP; the client gets 502.
func (x *session) badResponse(why string) {
	x.ex.SetFailure("the app's response was not valid HTTP: " + why)
	x.reply(exchange.InvalidResponse, x.wentOn)
}

// abort ends an exchange whose response cannot be finished: half a
// response cannot be mended, so the client's connection ends.
func (x *session) abort(f exchange.Flag) {
	if !x.headSent {
		x.clientGone()
		return
	}
	x.ex.AddFlag(f)
	x.endExchange()
	x.close(false)
}

func (x *session) appendStatusLine(b []byte, status int, reason []byte) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if len(reason) == 0 {
		b = append(b, http.StatusText(status)...)
	} else {
		b = append(b, reason...)
	}
	return append(b, '\r', '\n')
}

// appendConnection is the response's Connection field for the client's
// connection: close when it ends after this response, keep-alive for an
// HTTP/1.0 client that asked to keep it.
func (x *session) appendConnection(b []byte) []byte {
	switch {
	case x.closing:
		return append(b, "Connection: close\r\n"...)
	case x.req.Minor == 0:
		return append(b, "Connection: keep-alive\r\n"...)
	}
	return b
}

func itoa(n int) string { return strconv.Itoa(n) }
