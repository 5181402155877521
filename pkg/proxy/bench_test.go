package proxy

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Ways to move passthrough bytes, measured against each other: the proxy's
// (pooled buffers, spliced once bulk), splice(2) from the first byte through
// (*net.TCPConn).ReadFrom, and a plain read and write through a buffer of
// its own per connection.
var strategies = map[string]func(dst, src *net.TCPConn) (int64, error){
	"proxy": func(dst, src *net.TCPConn) (int64, error) { return copyHalf(dst, src, nil, nil) }, // what the proxy uses
	"proxy-idle": func(dst, src *net.TCPConn) (int64, error) { // with the default 1h idle timeout
		it := newIdle(time.Hour, func() {})
		defer it.stop()
		return copyHalf(dst, src, nil, it)
	},
	"splice": func(dst, src *net.TCPConn) (int64, error) {
		n, err := dst.ReadFrom(src)
		if err == nil {
			dst.CloseWrite()
		}
		return n, err
	},
	"readwrite16k":  readWrite(16 << 10),
	"readwrite64k":  readWrite(64 << 10),
	"readwrite256k": readWrite(256 << 10),
}

func readWrite(size int) func(dst, src *net.TCPConn) (int64, error) {
	return func(dst, src *net.TCPConn) (int64, error) {
		n, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, size))
		if err == nil {
			dst.CloseWrite()
		}
		return n, err
	}
}

// forwarder is a minimal proxy in front of dst that copies with copy.
func forwarder(b testing.TB, dst netip.AddrPort, copy func(dst, src *net.TCPConn) (int64, error)) string {
	return app(b, func(c *net.TCPConn) {
		up, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(dst))
		if err != nil {
			c.Close()
			return
		}
		go func() { copy(up, c); up.CloseWrite() }()
		copy(c, up)
		c.Close()
		up.Close()
	}).String()
}

func echoServer(b *testing.B) netip.AddrPort {
	return app(b, func(c *net.TCPConn) { io.Copy(c, c); c.Close() })
}

// BenchmarkSmallExchange: one 1 KiB request and its echo per op, on one
// connection, as a keep-alive HTTP exchange is. Latency-bound.
func BenchmarkSmallExchange(b *testing.B) {
	for name, copy := range strategies {
		b.Run(name, func(b *testing.B) {
			addr := forwarder(b, echoServer(b), copy)
			c, err := net.Dial("tcp", addr)
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
// make the sink the bottleneck, see copy.go). Throughput-bound.
func BenchmarkBulk(b *testing.B) {
	for name, copy := range strategies {
		b.Run(name, func(b *testing.B) {
			sink := app(b, func(c *net.TCPConn) {
				io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{c}, make([]byte, 256<<10))
				c.Close()
			})
			addr := forwarder(b, sink, copy)
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
