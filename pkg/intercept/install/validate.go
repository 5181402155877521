package install

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/intercept/capture"
	"github.com/veneermesh/veneer/pkg/intercept/iptables"
	"github.com/veneermesh/veneer/pkg/intercept/probe"
)

// validate proves, from inside the namespace, that a connection to a captured
// port reaches a listener on the proxy port that reports the original
// destination, as istio-validation does.
//
// Connections made inside the pod never pass PREROUTING, so for the length of
// the probe one nat OUTPUT rule, narrowed to the probe's own loopback source
// port, sends the probe into VENEER_INBOUND: the very chain real inbound
// traffic takes. The rule is removed before validate returns.
func validate(t *iptables.Tables, o capture.Options, timeout time.Duration) error {
	port, ok := capturedPort(o)
	if !ok {
		return errors.New("no inbound port is captured; nothing to validate")
	}
	lo := netip.MustParseAddr("127.0.0.1")
	if t.Family == iptables.IPv6 {
		lo = netip.IPv6Loopback()
	}
	src, err := freePort(lo)
	if err != nil {
		return err
	}
	dst := netip.AddrPortFrom(lo, port)
	spec := fmt.Sprintf(`OUTPUT -s %s -d %s -p tcp -m tcp --sport %d --dport %d -m comment --comment "veneer: validation probe (temporary)" -j %s`,
		lo, lo, src.Port(), port, capture.ChainInbound)
	if err := t.Restore("*nat\n-A " + spec + "\nCOMMIT\n"); err != nil {
		return fmt.Errorf("adding the probe rule: %w", err)
	}
	defer t.Restore("*nat\n-D " + spec + "\nCOMMIT\n")

	d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(src)}
	c, err := d.Dial("tcp", dst.String())
	if errors.Is(err, syscall.ECONNREFUSED) {
		agent := netip.AddrPortFrom(lo, o.ProxyPort)
		if a, err := net.DialTimeout("tcp", agent.String(), timeout); err != nil {
			return fmt.Errorf("no agent listens on %s (is veneer-agent running?)", agent)
		} else {
			a.Close()
		}
		return fmt.Errorf("a connection to %s was not redirected to port %d", dst, o.ProxyPort)
	}
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", dst, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && reply == "" {
		return fmt.Errorf("a connection to %s got no answer from the agent on port %d: %w", dst, o.ProxyPort, err)
	}
	got, err := probe.Parse(reply)
	if err != nil {
		return fmt.Errorf("a connection to %s was not redirected to the agent: %w", dst, err)
	}
	if got != dst {
		return fmt.Errorf("the agent reported original destination %s; want %s", got, dst)
	}
	return nil
}

// capturedPort is a port the plan captures: the first listed, or for "*" the
// first from 8080 up.
func capturedPort(o capture.Options) (uint16, bool) {
	candidates := o.InboundPorts.Ports
	if o.InboundPorts.All {
		candidates = []uint16{8080, 8081, 8082, 8083, 8084, 8085, 8086, 8087}
	}
	for _, p := range candidates {
		if o.Captures(p) {
			return p, true
		}
	}
	return 0, false
}

// freePort finds a loopback port to make the probe from, so the probe rule can
// match that one connection and no other.
func freePort(lo netip.Addr) (netip.AddrPort, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(lo.String(), "0"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("finding a source port on %s: %w", lo, err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(p)
	return netip.AddrPortFrom(lo, uint16(n)), nil
}
