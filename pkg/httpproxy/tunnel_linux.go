package httpproxy

import (
	"net/http"
	"time"

	"github.com/veneermesh/veneer/pkg/exchange"
	"github.com/veneermesh/veneer/pkg/http1"
	"github.com/veneermesh/veneer/pkg/loop"
)

// An Upgrade on the loop (WebSocket, say): the request goes to the app
// with its Upgrade field and "Connection: Upgrade". An app that declines
// answers as to any request, and the connection goes on as HTTP. An app
// that takes it answers 101: the 101 goes to the client through the
// Response hooks, and once it is out the connection is a tunnel, its
// bytes moved both ways by the loop's flows (half-closes passed on,
// splice for bulk, a reset from either side passed on as a reset) until
// both ends close. The exchange ends then: its access log line has the
// tunnel's whole life and bytes, as Envoy's does. The two heads stay
// in their buffers for the access log until then.

// switchProtocols takes the app's 101, the head rin[off:off+n], to a
// request with Upgrade.
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
	ex.Status = http.StatusSwitchingProtocols
	ex.Response = &x.respH
	x.rt.chain.Response(ex, x.wentOn)
	x.cout = x.appendStatusLine(x.cout, h.Status, h.Reason.Of(buf))
	x.cout = x.respH.AppendFields(x.cout, x.skipSwitchField)
	x.cout = append(x.cout, "Connection: Upgrade\r\n\r\n"...)
	x.headSent, x.respDone = true, true
}

// skipSwitchField leaves out of the 101 the fields of the app's
// connection, but the protocol it switched to.
func (x *session) skipSwitchField(name []byte) bool {
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
