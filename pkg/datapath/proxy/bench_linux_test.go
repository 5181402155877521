package proxy

import (
	"io"
	"net"
	"net/netip"
	"testing"
)

// Ways to move passthrough bytes, measured against each other: the proxy
// itself (its loop, buffers, spliced once bulk), and forwarders with a
// goroutine per direction: splice(2) from the first byte through
// (*net.TCPConn).ReadFrom, or a plain read and write through a buffer of
// its own per connection.
var strategies = map[string]func(testing.TB, netip.AddrPort) string{
	"proxy": func(b testing.TB, dst netip.AddrPort) string {
		s, err := New(Config{OriginalDst: func(int, bool, uint16) (netip.AddrPort, error) { return dst, nil },
			IsProbe: func(netip.AddrPort) bool { return false }}, nopLog, nopReg())
		if err != nil {
			b.Fatal(err)
		}
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		addr := l.Addr().String()
		go s.Serve(l)
		b.Cleanup(func() { s.Shutdown(canceled()) })
		return addr
	},
	"goroutines-splice": goroutines(func(dst, src *net.TCPConn) { dst.ReadFrom(src) }),
	"goroutines-copy64k": goroutines(func(dst, src *net.TCPConn) {
		io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 64<<10))
	}),
}

// goroutines is a minimal forwarder in front of dst that copies each
// direction on a goroutine of its own with copy.
func goroutines(copy func(dst, src *net.TCPConn)) func(testing.TB, netip.AddrPort) string {
	return func(b testing.TB, dst netip.AddrPort) string {
		return app(b, func(c *net.TCPConn) {
			up, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(dst))
			if err != nil {
				c.Close()
				return
			}
			go func() { copy(up, c); up.CloseWrite() }()
			copy(c, up)
			c.CloseWrite()
			c.Close()
			up.Close()
		}).String()
	}
}

func echoServer(b *testing.B) netip.AddrPort {
	return app(b, func(c *net.TCPConn) { io.Copy(c, c); c.Close() })
}

// BenchmarkSmallExchange: one 1 KiB request and its echo per op, on one
// connection, as a keep-alive HTTP exchange is. Latency-bound.
func BenchmarkSmallExchange(b *testing.B) {
	for name, forwarder := range strategies {
		b.Run(name, func(b *testing.B) {
			c, err := net.Dial("tcp", forwarder(b, echoServer(b)))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 1024)
			buf := make([]byte, 1024)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBulk: a 64 MiB stream one way per op, through a sink that
// discards what it reads 256 KiB at a time (io.Discard's own 8 KiB reads
// make the sink the bottleneck). Throughput-bound.
func BenchmarkBulk(b *testing.B) {
	for name, forwarder := range strategies {
		b.Run(name, func(b *testing.B) {
			sink := app(b, func(c *net.TCPConn) {
				io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{c}, make([]byte, 256<<10))
				c.Close()
			})
			addr := forwarder(b, sink)
			chunk := make([]byte, 1<<20)
			const size = 64 << 20
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				for sent := 0; sent < size; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c) // until the forwarder closes: all delivered
				c.Close()
			}
		})
	}
}
