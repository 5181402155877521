// Package looptls is TLS on the event loop: crypto/tls's handshake and
// record layer over a socket that never leaves its loop (pkg/datapath/loop).
//
// A Conn is a loop.Layer: set as a Socket's Layer, it turns the socket's
// records into its owner's plaintext and back, so that what reads and
// writes sockets on the loop (the proxy's flows, the HTTP sessions) reads
// and writes TLS the same way, with the same readiness.
//
//	c := looptls.Server(l, &sock, cfg, hello) // hello: bytes already read
//	sock.Layer = c
//	...                                       // the owner is woken (Ready(fd, 0)) when it ends
//	if c.State() == looptls.Open { n, err := loop.Read(&sock, buf) }
//
// The handshake runs on a goroutine of its own, since crypto/tls's
// handshake blocks on its connection and does not survive a "try again":
// its reads wait for bytes the loop reads for it when the socket is
// ready, its writes are queued to the loop. Their number is bounded
// (maxHandshakes). Once it ends, crypto/tls's record layer runs on the
// loop: its connection's Read reads the socket and returns a temporary
// net.Error when the socket is drained, which crypto/tls does not keep
// (the next Read goes on where the record stopped), and its Write writes
// through, keeping what the socket does not take for the next edge.
//
// Records are full size (16 KiB, DynamicRecordSizingDisabled in pkg/mesh/mtls):
// a write of the owner is as many records as it needs, not one per read of
// the other side.
//
// It is Linux-only, as the loop is.
package looptls
