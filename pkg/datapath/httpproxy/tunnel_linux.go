package httpproxy

import (
	"net/http"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// An Upgrade on the loop (WebSocket, say): the request goes to the app
// with its Upgrade field and "Connection: Upgrade", and its body if it has
// one. An app that declines answers as to any request, and the connection
// goes on as HTTP. An app that takes it answers 101: the 101 goes to the
// client through the Response hooks, and once it is out and the request's
// body has gone to the app the connection is a tunnel, its
// bytes moved both ways by the loop's flows (half-closes passed on,
// splice for bulk, a reset from either side passed on as a reset) until
// both ends close. The exchange ends then: its access log line has the
// tunnel's whole life and bytes, as Envoy's does. The two heads stay
// in their buffers for the access log until then.
//
// CONNECT goes the same way, to an app that is a proxy: its 2xx opens the
// tunnel, any other answer is an ordinary response.

// switchProtocols takes the app's 101 to a request with Upgrade, or its
// 2xx to CONNECT: the head rin[off:off+n].
func (x *session) switchProtocols(n int) {
	h := &x.resp
	buf := x.rin.b[x.rin.off : x.rin.off+n]
	x.l.Disarm(&x.reqTimer)
	x.respGot, x.switched = true, true
	ex := &x.ex
	ex.SetUpstreamTime(time.Since(x.sentAt))
	x.rin.keep(n)
	x.respH.Reset(buf, h.Fields)
	x.respNominate = h.Nominated(buf, x.respNominate[:0])
	ex.Status = h.Status
	ex.Response = &x.respH
	x.rt.chain.Response(ex, x.wentOn)
	x.cout = x.appendStatusLine(x.cout, h.Status, h.Reason.Of(buf))
	x.cout = x.respH.AppendFields(x.cout, x.skipSwitchField)
	if h.Status == http.StatusSwitchingProtocols {
		x.cout = append(x.cout, "Connection: Upgrade\r\n"...)
	}
	x.cout = append(x.cout, '\r', '\n')
	x.headSent, x.respDone = true, true
}

// skipSwitchField leaves out of the 101 the fields of the app's
// connection, but the protocol it switched to; out of a 2xx to CONNECT,
// the framing it must not have (RFC 9110 §9.3.6).
func (x *session) skipSwitchField(name []byte) bool {
	if x.connect {
		return http1.FoldEqual(name, "content-length") || x.skipResponseField(name)
	}
	return !http1.FoldEqual(name, "upgrade") && x.skipResponseField(name)
}

// startTunnel: the 101 is out. What each side sent after its head goes
// first.
func (x *session) startTunnel() {
	x.preUp = int64(x.in.end - x.in.off)
	x.up.Load(x.l, x.in.pending())
	x.in.off = x.in.end
	x.down.Load(x.l, x.rin.pending())
	x.rin.off = x.rin.end
	x.enter(tunneling)
}

func (x *session) tunnel() {
	switch loop.PumpPair(x.l, &x.up, &x.down, &x.client, &x.app.sock) {
	case loop.Again:
		x.l.Arm(&x.again, x.l.Now())
	case loop.Closed:
		x.close(false)
	case loop.ClientBroke:
		x.ex.AddFlag(exchange.DownstreamReset)
		x.close(true)
	case loop.AppBroke:
		x.ex.AddFlag(exchange.UpstreamReset)
		x.close(true)
	}
}

// settleTunnel counts the tunnel's bytes, gives back what its flows hold,
// and ends the exchange: when the session closes.
func (x *session) settleTunnel() {
	x.l.Disarm(&x.again)
	x.received += x.up.Moved - x.preUp
	x.sent += x.down.Moved
	x.ex.AddReceived(x.up.Moved)
	x.ex.Sent += x.down.Moved
	x.up.Release(x.l)
	x.down.Release(x.l)
	x.endExchange()
}
