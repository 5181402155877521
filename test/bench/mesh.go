//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/veneermesh/veneer/pkg/mesh/identity/testca"
	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// meshClientUID is the client-side agent's UID: its own connections pass
// the client namespace's outbound capture.
const meshClientUID = 1338

// meshCases are two agents on the path, as between two meshed pods: the
// client's agent gets wrk's connections by outbound capture and connects to
// the server pod, where the capture hands them to the server's agent,
// first in plaintext, then with mTLS (SVIDs in csi-driver-spiffe's files,
// from a CA made here; the mTLS test uses SPIRE's).
// The names are prefixed with prefix, and their ports start at base: a
// second set, with another agent binary (-compare), runs beside the first.
func meshCases(dir, agent, prefix string, base int, cfg func(name, body string) string) []*proxyCase {
	ca := testca.New(fatal{}, "veneer.bench")
	svid := func(name, id string, uid int) string {
		d := filepath.Join(dir, prefix+name)
		os.Mkdir(d, 0o700)
		ca.WriteDir(fatal{}, d, "spiffe://veneer.bench"+id, 24*time.Hour)
		chownAll(d, uid)
		return d
	}
	serverSVID, clientSVID := svid("svid-server", "/ns/bench/sa/server", 1337), svid("svid-client", "/ns/bench/sa/client", meshClientUID)
	pid := localpod.PodIP.String()
	c := func(name string, port int, server, client string, serverFlags, clientFlags []string) *proxyCase {
		a := port - 15006 + 15000
		out := port + 5 // the client's agent's outbound port
		pc := &proxyCase{name: name, port: port, uid: 1337, app: "fast", stdout: nil, admin: a + 3000, outPort: out,
			cmd: append([]string{agent, "--listen", fmt.Sprintf(":%d", port), "--admin", fmt.Sprintf("127.0.0.1:%d", a),
				"--admin-local", fmt.Sprintf("127.0.0.1:%d", a+3000), "--outbound-listen", "", "--config", cfg(strings.ReplaceAll(name, " ", "_")+"-server.yaml", server),
				"--max-connections", "0"}, serverFlags...),
			clientCmd: append([]string{agent, "--listen", fmt.Sprintf(":%d", port+4), "--admin", fmt.Sprintf("127.0.0.1:%d", a+1),
				"--admin-local", fmt.Sprintf("127.0.0.1:%d", a+3001), "--outbound-listen", fmt.Sprintf(":%d", out), "--config", cfg(strings.ReplaceAll(name, " ", "_")+"-client.yaml", client),
				"--max-connections", "0"}, clientFlags...)}
		return pc
	}
	httpServer := "default: {protocol: http, http: {requestId: true}}\n"
	peers := fmt.Sprintf("mesh: {peers: [{cidrs: [%s/32]}]}\n", pid)
	svids := [2][]string{{"--svid-dir", serverSVID}, {"--svid-dir", clientSVID}}
	return []*proxyCase{
		c(prefix+"two agents, plaintext", base, httpServer, "outbound: {protocol: http}\n", nil, nil),
		c(prefix+"two agents, mTLS", base+100, "default: {protocol: http, mtls: strict, http: {requestId: true}}\n",
			"outbound: {protocol: http}\n"+peers, svids[0], svids[1]),
		// TCP between the agents: an mTLS connection (a tunnel) for each
		// client connection, where HTTP pools them. Its RSS with 1,000
		// held connections is that of 1,000 mTLS connections.
		c(prefix+"two agents tcp, plaintext", base+200, "default: {protocol: tcp}\n", "outbound: {protocol: tcp}\n", nil, nil),
		c(prefix+"two agents tcp, mTLS", base+300, "default: {protocol: tcp, mtls: strict}\n", "outbound: {protocol: tcp}\n"+peers, svids[0], svids[1]),
	}
}

// cpu is the CPU time of the case's proxies: the server-side one, and the
// client's agent of a mesh case.
func (c *proxyCase) cpu() float64 { return cpuSeconds(c.proc) + cpuSeconds(c.client) }

// meshReport compares the mesh cases: mTLS against plaintext, per
// keep-alive request and per new connection.
func meshReport(cases []*proxyCase, res map[string]*result) {
	var rows []string
	for _, c := range cases {
		if c.client == nil {
			continue
		}
		r := res[c.name]
		rows = append(rows, fmt.Sprintf("| %s | %.1f | %.0f | %.1f | %.3f / %.3f | %.0f |", c.name, median(r.cpuPerReq),
			median(r.connPerSec), median(r.cpuPerConn), median(r.p50), median(r.p99), median(r.streamMBps)))
	}
	if len(rows) == 0 {
		return
	}
	fmt.Print("\nTwo agents on the path (a client pod's by outbound capture, and the server pod's), their CPU together; a new connection per request is wrk -H 'Connection: close' (a TLS handshake between the agents on each, resumed from the client's session cache):\n\n")
	fmt.Println("| case | both agents' CPU µs per keep-alive request | new connections/s | both agents' CPU µs per new connection | p50 / p99 ms at 1k req/s | 1 GiB stream MB/s |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	fmt.Println(strings.Join(rows, "\n"))
	for _, kind := range []string{"", " tcp"} {
		p, m := res["two agents"+kind+", plaintext"], res["two agents"+kind+", mTLS"]
		if p != nil && m != nil {
			fmt.Printf("\nmTLS against plaintext%s: %.2f× CPU per keep-alive request, %.2f× the new connections per second, %.2f× CPU per new connection, p50 %+.3f ms, p99 %+.3f ms, stream %.2f×, RSS of the server's agent with 1,000 connections held %+.1f MiB.\n",
				kind, median(m.cpuPerReq)/median(p.cpuPerReq), median(m.connPerSec)/median(p.connPerSec), median(m.cpuPerConn)/median(p.cpuPerConn),
				median(m.p50)-median(p.p50), median(m.p99)-median(p.p99), median(m.streamMBps)/median(p.streamMBps), m.rss1k-p.rss1k)
		}
	}
}

// fatal is testca's failure for the benchmark: the run ends.
type fatal struct{}

func (fatal) Helper() {}
func (fatal) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"bench:"}, args...)...)
	os.Exit(1)
}

func chownAll(dir string, uid int) {
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Chown(p, uid, uid)
		}
		return nil
	})
}
