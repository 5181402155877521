package httpproxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
)

// everyDecoration is make bench's config with every decoration configured
// but not firing.
const everyDecoration = "../../../test/bench/every.yaml"

// BenchmarkServe is one keep-alive GET through the whole HTTP path (the
// proxy's loop, the chain, the loop's pooled connection to the app) and its
// 1 KiB response. Client and app are raw loops over loopback that allocate
// nothing per request, so allocs/op are the agent's:
//
//	go test -run '^$' -bench Serve -benchmem -count 10 ./pkg/datapath/httpproxy | benchstat -col /chain -
func BenchmarkServe(b *testing.B) {
	app := rawApp(b)
	every, err := os.ReadFile(everyDecoration)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, yaml string }{
		{"chain=default", "default: {protocol: http, http: {requestId: true}}"}, // make bench's default
		{"chain=every", string(every)},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := serving(b, Options{Access: io.Discard}, c.yaml)
			addr := onLoop(b, s, app)

			req := []byte("GET /bench HTTP/1.1\r\nHost: app\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			// A client connection through the proxy, and its loop of requests.
			connect := func() (net.Conn, *bufio.Reader) {
				client, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { client.Close() })
				return client, bufio.NewReader(client)
			}
			get := func(client net.Conn, br *bufio.Reader) error {
				if _, err := client.Write(req); err != nil {
					return err
				}
				return readResponse(br)
			}
			// One client: the latency of a request. Eight clients keep
			// both cores busy: the cost of a request when throughput is
			// what counts.
			b.Run("conns=1", func(b *testing.B) {
				client, br := connect()
				b.ReportAllocs()
				for b.Loop() {
					if err := get(client, br); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("conns=8", func(b *testing.B) {
				b.SetParallelism(4) // x GOMAXPROCS(2)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					client, br := connect()
					for pb.Next() {
						if err := get(client, br); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

// readResponse reads one response with a Content-Length body, allocating
// nothing.
func readResponse(br *bufio.Reader) error {
	length := -1
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first && !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
			return fmt.Errorf("status line %q", line)
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return err
			}
			length = n
		}
	}
	if length != 1024 {
		return fmt.Errorf("content length %d", length)
	}
	_, err := br.Discard(length)
	return err
}

// rawApp answers every request head it reads with the same 1 KiB response.
func rawApp(b testing.TB) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := append([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n"), bytes.Repeat([]byte("a"), 1024)...)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) <= 2 { // the blank line ending a head
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// loopbackPair is a connected pair of loopback TCP connections. It is safe
// to call from RunParallel's goroutines (b.Fatal is not).
func loopbackPair(b testing.TB) (client, server net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	if server, err = ln.Accept(); err != nil {
		panic(err)
	}
	b.Cleanup(func() { client.Close() })
	return client, server
}
