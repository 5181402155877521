//go:build linux

package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spire is a real SPIRE server and agent for one trust domain, built from
// the Go module proxy (test/tools/spire, make bin/spire-server
// bin/spire-agent) and started for a test: join-token node attestation,
// the unix workload attestor (an SVID per UID), short SVID TTLs.
type spire struct {
	t          *testing.T
	td         string
	dir        string // configs, data, sockets
	port       int
	serverSock string
	agentSock  string // the Workload API
	agent      *exec.Cmd
	agentLog   *logBuffer
	agentDone  chan error
}

// spireBin is the path of a SPIRE binary, or a skip (a failure in CI).
func spireBin(t *testing.T, name string) string {
	p, _ := filepath.Abs("../../bin/" + name)
	_, err := os.Stat(p)
	need(t, err == nil, "bin/"+name+" is not built (make bin/spire-server bin/spire-agent builds SPIRE from test/tools/spire)")
	return p
}

// startSPIRE starts a SPIRE server for trust domain td and an agent
// attested to it, and waits until both are healthy.
func startSPIRE(t *testing.T, td string) *spire {
	t.Helper()
	requireRoot(t)
	server := spireBin(t, "spire-server")
	spireBin(t, "spire-agent")
	// Not t.TempDir(): the workloads' UIDs must reach the agent's socket.
	dir, err := os.MkdirTemp("", "veneer-spire-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	s := &spire{t: t, td: td, dir: dir, port: freePort(t), serverSock: filepath.Join(dir, "server.sock"), agentSock: filepath.Join(dir, "agent.sock")}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// ca_ttl is at least six times every TTL under it: SPIRE refuses less.
	serverConf := write("server.conf", fmt.Sprintf(`
server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = "%s"
  trust_domain = "%s"
  data_dir = "%s/server-data"
  log_level = "WARN"
  default_x509_svid_ttl = "60s"
  agent_ttl = "10m"
  ca_ttl = "1h"
  experimental { cache_reload_interval = "1s" }
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "%s/server-data/datastore.sqlite3" } }
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "memory" { plugin_data {} }
}
`, s.port, s.serverSock, td, dir, dir))
	srv := exec.Command(server, "run", "-config", serverConf)
	srvLog := &logBuffer{}
	srv.Stdout, srv.Stderr = srvLog, srvLog
	if err := srv.Start(); err != nil {
		t.Fatalf("starting spire-server: %v", err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	t.Cleanup(func() {
		srv.Process.Kill()
		<-srvDone
		if t.Failed() {
			t.Logf("spire-server (%s):\n%s", td, srvLog)
		}
	})
	s.waitOK("spire-server healthy", 20*time.Second, nil, server, "healthcheck", "-socketPath", s.serverSock)

	write("agent.conf", fmt.Sprintf(`
agent {
  data_dir = "%s/agent-data"
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "%d"
  socket_path = "%s"
  trust_domain = "%s"
  insecure_bootstrap = true
  experimental { sync_interval = "1s" }
}
plugins {
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "memory" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`, dir, s.port, s.agentSock, td))
	s.StartAgent()
	t.Cleanup(s.KillAgent)
	return s
}

// StartAgent starts the SPIRE agent with a fresh join token (an agent with
// a memory key manager cannot come back on its old one) and waits until
// it is healthy.
func (s *spire) StartAgent() {
	s.t.Helper()
	out := s.server("token", "generate", "-spiffeID", "spiffe://"+s.td+"/node")
	m := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		s.t.Fatalf("spire-server token generate: %q", out)
	}
	s.agent = exec.Command(spireBin(s.t, "spire-agent"), "run", "-config", filepath.Join(s.dir, "agent.conf"), "-joinToken", m[1])
	s.agentLog, s.agentDone = &logBuffer{}, make(chan error, 1)
	s.agent.Stdout, s.agent.Stderr = s.agentLog, s.agentLog
	if err := s.agent.Start(); err != nil {
		s.t.Fatalf("starting spire-agent: %v", err)
	}
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(s.agent, s.agentDone)
	s.waitOK("spire-agent healthy", 20*time.Second, nil, spireBin(s.t, "spire-agent"), "healthcheck", "-socketPath", s.agentSock)
}

// KillAgent kills the SPIRE agent, as a node losing it would.
func (s *spire) KillAgent() {
	if s.agent == nil {
		return
	}
	s.agent.Process.Kill()
	<-s.agentDone
	if s.t.Failed() {
		s.t.Logf("spire-agent (%s):\n%s", s.td, s.agentLog)
	}
	s.agent = nil
}

// Entry registers spiffe://td/path for the processes of uid, with SVIDs
// that live ttl seconds, and waits until a process of uid can fetch it.
func (s *spire) Entry(path string, uid, ttl int) string {
	s.t.Helper()
	id := "spiffe://" + s.td + path
	s.server("entry", "create", "-parentID", "spiffe://"+s.td+"/node", "-spiffeID", id,
		"-selector", "unix:uid:"+strconv.Itoa(uid), "-x509SVIDTTL", strconv.Itoa(ttl))
	s.waitOK("an SVID for "+id, 20*time.Second, &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)},
		spireBin(s.t, "spire-agent"), "api", "fetch", "x509", "-socketPath", s.agentSock)
	return id
}

// SVIDFiles fetches the SVID of uid into a directory of its own, in
// csi-driver-spiffe's layout (tls.crt, tls.key, ca.crt), and returns it.
func (s *spire) SVIDFiles(uid int) string {
	s.t.Helper()
	dir, err := os.MkdirTemp(s.dir, "svid-")
	if err != nil {
		s.t.Fatal(err)
	}
	os.Chown(dir, uid, uid)
	s.waitOK("fetching the SVID of "+strconv.Itoa(uid), 20*time.Second, &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)},
		spireBin(s.t, "spire-agent"), "api", "fetch", "x509", "-socketPath", s.agentSock, "-write", dir)
	for from, to := range map[string]string{"svid.0.pem": "tls.crt", "svid.0.key": "tls.key", "bundle.0.pem": "ca.crt"} {
		if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
			s.t.Fatal(err)
		}
	}
	return dir
}

// server runs a spire-server command against the server's socket.
func (s *spire) server(args ...string) string {
	s.t.Helper()
	args = append(args[:len(args):len(args)], "-socketPath", s.serverSock)
	out, err := exec.Command(spireBin(s.t, "spire-server"), args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("spire-server %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitOK runs a command (as cred, when set) until it succeeds, or fails
// the test at the deadline.
func (s *spire) waitOK(what string, within time.Duration, cred *syscall.Credential, name string, args ...string) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		cmd := exec.Command(name, args...)
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if cmd.Run() == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s: %s %s:\n%s", what, name, strings.Join(args, " "), out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort is a TCP port on loopback nothing listens on now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
