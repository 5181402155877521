package httpproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/datapath/proxy"
	"github.com/veneermesh/veneer/pkg/mesh/identity"
	"github.com/veneermesh/veneer/pkg/mesh/identity/testca"
	"github.com/veneermesh/veneer/pkg/mesh/mtls"
)

// BenchmarkServeMTLS is BenchmarkServe's default chain with the client a
// meshed peer: its TLS ends on the proxy's loop (pkg/datapath/looptls), and each
// request and response is a record each way. Allocs/op are the agent's and
// the crypto/tls client's, which allocates nothing per record:
//
//	go test -run '^$' -bench 'Serve(MTLS)?$' -benchmem -count 10 ./pkg/datapath/httpproxy
func BenchmarkServeMTLS(b *testing.B) {
	app := rawApp(b)
	ca := testca.New(b, "veneer.bench")
	server := benchSVID(b, ca, "spiffe://veneer.bench/ns/bench/sa/server")
	client := benchSVID(b, ca, "spiffe://veneer.bench/ns/bench/sa/client")
	s := serving(b, Options{Access: io.Discard}, "default: {protocol: http, http: {requestId: true}}")
	addr := onLoopWith(b, s, app, &proxy.Policy{Protocol: proxy.ProtoHTTP, MTLS: proxy.MTLSStrict, SniffTimeout: time.Second}, server)
	ccfg := mtls.Client(client, nil, nil)
	req := []byte("GET /bench HTTP/1.1\r\nHost: app\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	connect := func() (*tls.Conn, *bufio.Reader) {
		raw, err := net.Dial("tcp", addr.String())
		if err != nil {
			panic(err)
		}
		c := tls.Client(raw, ccfg)
		if err := c.Handshake(); err != nil {
			panic(err)
		}
		b.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	get := func(c *tls.Conn, br *bufio.Reader) error {
		if _, err := c.Write(req); err != nil {
			return err
		}
		return readResponse(br)
	}
	b.Run("conns=1", func(b *testing.B) {
		c, br := connect()
		get(c, br) // the session ticket read, before counting
		b.ReportAllocs()
		for b.Loop() {
			if err := get(c, br); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("conns=8", func(b *testing.B) {
		b.SetParallelism(4) // x GOMAXPROCS(2)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			c, br := connect()
			for pb.Next() {
				if err := get(c, br); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchSVID is an identity of id from ca, in csi-driver-spiffe's files.
func benchSVID(b *testing.B, ca *testca.CA, id string) *identity.Source {
	dir := b.TempDir()
	ca.WriteDir(b, dir, id, time.Hour)
	src, err := identity.FromFiles(context.Background(), dir, time.Hour, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(src.Close)
	return src
}
