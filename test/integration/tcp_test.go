//go:build linux

package integration

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"testing"
	"time"
)

// TCP passthrough moves bulk both ways intact through the real capture (the
// agent splices transfers that fill its copy buffer): the client uploads
// 64 MiB and half-closes, the app answers with the upload's hash and then
// 64 MiB of its own, and closes; the agent counts every byte.
func TestTCPBulkBothWays(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	const size = 64 << 20
	download := make([]byte, size)
	rand.Read(download)
	p.servePod(":9090", func(c net.Conn) {
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c) // until the client's half-close
		io.WriteString(c, hex.EncodeToString(h.Sum(nil)))
		c.Write(download)
	})
	p.mustInit("--inbound-ports", "9090")
	p.startAgent("--config", p.writeConfig("default: {protocol: tcp}\n"))

	c := p.mustDial(9090, 10*time.Second)
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	upload := make([]byte, size)
	rand.Read(upload)
	if _, err := c.Write(upload); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(upload)
	if want := hex.EncodeToString(sum[:]); len(reply) < len(want) || string(reply[:len(want)]) != want {
		t.Fatalf("the app hashed the upload otherwise (got %d bytes back)", len(reply))
	}
	if got := reply[sha256.Size*2:]; sha256.Sum256(got) != sha256.Sum256(download) {
		t.Fatalf("downloaded %d bytes that differ from the app's %d", len(got), size)
	}
	p.waitFor("the connection counted", func() bool { return p.metric("veneer_tcp_connections_closed_total", "9090") == 1 })
	for name, want := range map[string]int{
		"veneer_tcp_received_bytes_total": size,
		"veneer_tcp_sent_bytes_total":     len(reply),
	} {
		if got := p.metric(name, "9090"); got != float64(want) {
			t.Errorf("%s = %v; want %d", name, got, want)
		}
	}
}
