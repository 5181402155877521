package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// What the proxy gives the HTTP server (pkg/datapath/httpproxy) for a connection it
// found to carry HTTP: the connection stays on its loop (handOff).

// HTTPServer serves the connections found to carry HTTP, on the loop
// that accepted them: their sockets stay registered where they are and are
// given to the server's handler (pkg/datapath/httpproxy's session).
type HTTPServer interface {
	ServeLoop(c LoopConn)
}

// LoopConn is a connection found to carry HTTP, kept on its loop.
type LoopConn struct {
	Loop   *loop.Loop
	Client loop.Socket    // registered on Loop
	App    loop.Socket    // a connection to the app dialled while sniffing, registered too; FD -1 when none
	Pre    []byte         // bytes already read from the client, valid during ServeLoop only
	Peer   netip.AddrPort // the real client
	Dst    netip.AddrPort // the original destination: the app
	// Prepare sets up a socket to the app before its connect (loop.Connect).
	Prepare func(fd int, ipv6 bool) error
	// Closed is called once, when the connection closes, with the bytes
	// each way and how it ended.
	Closed func(received, sent int64, end string)
	// TLS: the client is a meshed peer whose TLS ended on Client's Layer,
	// its verified SPIFFE ID Principal (inbound); or the app is a meshed
	// peer, reached with mTLS (outbound).
	TLS       bool
	Principal string
	// Upstream, when set, is the mTLS configuration the connections to
	// the app handshake with (the app is a meshed peer); Handshook counts
	// each completed handshake.
	Upstream  *tls.Config
	Handshook func(tls.ConnectionState)
	// Own: the connections to the app serve this client only, never
	// another (tproxy mode: they come from the client's address; the PROXY
	// protocol: they start with the client's header). Header, when set,
	// is what each new one starts with.
	Own    bool
	Header []byte
	// Dial opens this client's own connection to the app (with mTLS, to a
	// meshed peer) from a goroutine, for HTTP/2, which the server hands to
	// net/http's; nil: net/http's shared pool.
	Dial func(ctx context.Context) (net.Conn, error)
}
