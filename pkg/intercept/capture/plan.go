// Package capture decides which iptables rules send a pod's traffic to the
// veneer agent, and brings the nat and mangle tables to that decision.
//
// The rules are data first: Build is a pure function from Options to a Plan,
// and everything else (the iptables-restore input, the check that a re-run
// finds its rules in place, the clean-up) is rendered from that one Plan:
//
//	plan := capture.Build(opts, false)                   // IPv4
//	have, err := capture.Read(tables)                    // what the tables hold now
//	input, changed := capture.Restore(plan.State(), have) // iptables-restore text
//	err = tables.Restore(input)                          // one transaction per table
//
// Two ways to capture inbound traffic:
//   - redirect (the default, works everywhere): nat REDIRECT to the agent's
//     port; the app sees the agent as its peer;
//   - tproxy: mangle TPROXY hands packets to the agent's transparent socket
//     without rewriting them, and the agent connects to the app from the
//     client's own address, so the app sees the real client. It needs policy
//     routing (Plan.Routing) and an agent with CAP_NET_ADMIN.
//
// Outbound capture (off by default) sends the app's own outgoing TCP to the
// agent's outbound port, except the agent's own traffic.
package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// The tables veneer writes, in the order they are rendered.
var Tables = []string{"nat", "mangle"}

// builtinChains are the chains of each table that may hold jumps into
// veneer's chains.
var builtinChains = map[string][]string{
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
}

// Chain names. Every chain veneer owns starts with ChainPrefix, so that
// clean-up can find all of them and touch nothing else.
const (
	ChainPrefix      = "VENEER_"
	ChainInbound     = "VENEER_INBOUND"      // decides, per destination port, what is captured
	ChainInRedirect  = "VENEER_IN_REDIRECT"  // redirect mode: hands a captured connection to the agent
	ChainTproxy      = "VENEER_TPROXY"       // tproxy mode: hands a captured packet to the agent
	ChainDivert      = "VENEER_DIVERT"       // tproxy mode: packets of connections the agent holds
	ChainMark        = "VENEER_MARK"         // tproxy mode: routes the app's replies back to the agent
	ChainOutbound    = "VENEER_OUTPUT"       // decides which outgoing connections are captured
	ChainOutRedirect = "VENEER_OUT_REDIRECT" // hands a captured outgoing connection to the agent
)

// Modes of inbound capture.
const (
	ModeRedirect = "redirect"
	ModeTproxy   = "tproxy"
)

// Options is what the plan depends on, and nothing else.
type Options struct {
	// Mode is how inbound traffic is captured: ModeRedirect or ModeTproxy.
	// Empty means ModeRedirect.
	Mode string
	// InboundPorts are the destination ports whose inbound TCP connections go
	// to the agent. Empty captures nothing inbound.
	InboundPorts PortSet
	// ExcludeInboundPorts are never captured, even when InboundPorts is "*".
	ExcludeInboundPorts PortSet
	// ProxyPort is the agent's inbound listener.
	ProxyPort uint16
	// AgentPorts are the agent's other listening ports (its admin port). They
	// and ProxyPort are never captured.
	AgentPorts []uint16

	// Outbound captures the app's outgoing TCP to OutboundPort.
	Outbound             bool
	OutboundPort         uint16
	ExcludeOutboundPorts PortSet
	ExcludeOutboundCIDRs []netip.Prefix
	// ProxyUID and ProxyGID are the agent's: its own outgoing connections
	// are never captured.
	ProxyUID, ProxyGID uint32

	// Mark is the packet mark of tproxy mode (the agent sets it on its
	// connections to the app; the policy routing rule matches it), and
	// RouteTable the routing table that delivers marked packets locally.
	// Zero means 0x539 (1337) and 133, as Istio uses.
	Mark       uint32
	RouteTable int
}

func (o Options) mark() uint32 {
	if o.Mark == 0 {
		return 0x539
	}
	return o.Mark
}

func (o Options) routeTable() int {
	if o.RouteTable == 0 {
		return 133
	}
	return o.RouteTable
}

// Validate reports the first option that cannot produce a working plan.
func (o Options) Validate() error {
	switch o.Mode {
	case "", ModeRedirect, ModeTproxy:
	default:
		return fmt.Errorf("--mode: %q is not a mode (redirect or tproxy)", o.Mode)
	}
	if o.ProxyPort == 0 {
		return fmt.Errorf("--proxy-port: 0 is not a port (1-65535)")
	}
	if o.ExcludeInboundPorts.All {
		return fmt.Errorf("--exclude-inbound-ports: \"*\" would capture nothing; to capture nothing, set --inbound-ports to \"\"")
	}
	for _, p := range o.InboundPorts.Ports {
		if o.agentPort(p) {
			return fmt.Errorf("--inbound-ports: %d is one of the agent's own ports (%s), which are never captured", p, o.agentPortList())
		}
	}
	if o.Outbound {
		if o.OutboundPort == 0 {
			return fmt.Errorf("--outbound-port: 0 is not a port (1-65535)")
		}
		if o.OutboundPort == o.ProxyPort || slices.Contains(o.AgentPorts, o.OutboundPort) {
			return fmt.Errorf("--outbound-port: %d is already one of the agent's ports (%s)", o.OutboundPort, o.agentPortList())
		}
		if o.ExcludeOutboundPorts.All {
			return fmt.Errorf("--exclude-outbound-ports: \"*\" would capture nothing; to capture nothing, leave --outbound off")
		}
		if o.ProxyUID == 0 {
			return fmt.Errorf("--proxy-uid: outbound capture needs the agent's user ID, to leave its own traffic alone")
		}
	}
	return nil
}

func (o Options) agentPort(p uint16) bool {
	return p == o.ProxyPort || slices.Contains(o.AgentPorts, p)
}

// Captures reports whether inbound TCP to port p goes to the agent.
func (o Options) Captures(p uint16) bool {
	return o.InboundPorts.Contains(p) && !o.ExcludeInboundPorts.Contains(p) && !o.agentPort(p)
}

func (o Options) agentPortList() string {
	s := strconv.Itoa(int(o.ProxyPort))
	for _, a := range o.AgentPorts {
		s += "," + strconv.Itoa(int(a))
	}
	return s
}

// Rule is one iptables rule: its table, the chain it is appended to and its
// specification, in the order and form iptables-save prints it, so that a
// rule read back from the kernel compares equal to the planned one.
type Rule struct {
	Table string
	Chain string
	Spec  []string
}

// Chain is one of veneer's chains.
type Chain struct{ Table, Name string }

// Routing is the policy routing of tproxy mode: packets carrying Mark are
// looked up in Table, whose only route delivers everything locally. It is
// how the app's replies to a client address the agent borrowed come back
// to the agent instead of leaving the pod.
type Routing struct {
	Mark     uint32
	Table    int
	Priority int
}

// Plan is the complete set of rules veneer wants.
type Plan struct {
	Chains  []Chain  // veneer's own chains, each created or flushed and refilled
	Rules   []Rule   // the rules of those chains, in order
	Jumps   []Rule   // the rules in built-in chains that lead into Chains
	Routing *Routing // tproxy mode only
}

// Empty reports whether the plan installs nothing.
func (p Plan) Empty() bool { return len(p.Chains) == 0 && len(p.Jumps) == 0 }

// rule builds a rule whose matches come before its comment and its target
// after, as iptables-save orders them. Comments use no quotes or
// apostrophes: iptables-save escapes those, and the rule would no longer
// compare equal to its plan.
func rule(table, chain string, matches []string, comment string, target ...string) Rule {
	spec := append(append([]string{}, matches...), "-m", "comment", "--comment", comment)
	return Rule{Table: table, Chain: chain, Spec: append(spec, target...)}
}

func tcpPort(p uint16) []string {
	return []string{"-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(int(p))}
}

var tcp = []string{"-p", "tcp"}

// Build computes the plan for o, for IPv6 when v6 is set (only the excluded
// CIDRs differ between families). It is pure: the same options give the same
// plan, whatever the machine. o must have passed Validate.
func Build(o Options, v6 bool) Plan {
	var p Plan
	if o.Mode == ModeTproxy {
		p.tproxy(o, v6)
	} else {
		p.redirect(o)
	}
	if o.Outbound {
		p.outbound(o, v6)
	}
	return p
}

// inboundSelection is the rules of VENEER_INBOUND in table that pick the
// captured ports and send them to target.
func inboundSelection(o Options, table, target string) []Rule {
	var rs []Rule
	if o.InboundPorts.All {
		// Every port but the agent's and the excluded ones: RETURN those first.
		for _, p := range append([]uint16{o.ProxyPort}, o.AgentPorts...) {
			rs = append(rs, rule(table, ChainInbound, tcpPort(p),
				"veneer: never capture agent port "+strconv.Itoa(int(p)), "-j", "RETURN"))
		}
		for _, p := range o.ExcludeInboundPorts.Ports {
			if o.agentPort(p) {
				continue
			}
			rs = append(rs, rule(table, ChainInbound, tcpPort(p),
				"veneer: excluded inbound port "+strconv.Itoa(int(p)), "-j", "RETURN"))
		}
		return append(rs, rule(table, ChainInbound, tcp, "veneer: capture every other inbound TCP port", "-j", target))
	}
	// A list needs no RETURN rules: what is excluded is simply not listed.
	for _, p := range o.InboundPorts.Ports {
		if o.Captures(p) {
			rs = append(rs, rule(table, ChainInbound, tcpPort(p),
				"veneer: capture inbound port "+strconv.Itoa(int(p)), "-j", target))
		}
	}
	return rs
}

func (p *Plan) redirect(o Options) {
	captured := inboundSelection(o, "nat", ChainInRedirect)
	if len(captured) == 0 {
		return
	}
	proxy := strconv.Itoa(int(o.ProxyPort))
	p.Chains = append(p.Chains, Chain{"nat", ChainInbound}, Chain{"nat", ChainInRedirect})
	p.Rules = append(p.Rules, captured...)
	p.Rules = append(p.Rules, rule("nat", ChainInRedirect, tcp,
		"veneer: redirect to agent port "+proxy, "-j", "REDIRECT", "--to-ports", proxy))
	p.Jumps = append(p.Jumps, rule("nat", "PREROUTING", tcp, "veneer: inbound TCP to the pod", "-j", ChainInbound))
}

func (p *Plan) tproxy(o Options, v6 bool) {
	captured := inboundSelection(o, "mangle", ChainTproxy)
	if len(captured) == 0 {
		return
	}
	mark := fmt.Sprintf("0x%x", o.mark())
	markMask := mark + "/0xffffffff"
	any := "0.0.0.0"
	if v6 {
		any = "::"
	}
	p.Chains = append(p.Chains, Chain{"mangle", ChainInbound}, Chain{"mangle", ChainDivert},
		Chain{"mangle", ChainTproxy}, Chain{"mangle", ChainMark})
	p.Rules = append(p.Rules,
		// The agent's own connections to the app arrive on lo: never again.
		rule("mangle", ChainInbound, []string{"-i", "lo"}, "veneer: traffic inside the pod is never captured", "-j", "RETURN"),
		rule("mangle", ChainInbound, []string{"-p", "tcp", "-m", "socket", "--transparent"},
			"veneer: packets of connections the agent holds", "-j", ChainDivert))
	p.Rules = append(p.Rules, captured...)
	p.Rules = append(p.Rules,
		rule("mangle", ChainDivert, nil, "veneer: deliver to the agent socket", "-j", "MARK", "--set-xmark", markMask),
		rule("mangle", ChainDivert, nil, "veneer: accept what the agent holds", "-j", "ACCEPT"),
		rule("mangle", ChainTproxy, tcp, "veneer: hand to agent port "+strconv.Itoa(int(o.ProxyPort)),
			"-j", "TPROXY", "--on-port", strconv.Itoa(int(o.ProxyPort)), "--on-ip", any, "--tproxy-mark", markMask),
		rule("mangle", ChainMark, []string{"-p", "tcp", "-m", "connmark", "--mark", mark},
			"veneer: app replies to a borrowed client address go back to the agent",
			"-j", "CONNMARK", "--restore-mark", "--nfmask", "0xffffffff", "--ctmask", "0xffffffff"),
		rule("mangle", ChainMark, []string{"-p", "tcp", "-m", "mark", "--mark", mark},
			"veneer: remember the agent connections to the app",
			"-j", "CONNMARK", "--save-mark", "--nfmask", "0xffffffff", "--ctmask", "0xffffffff"),
	)
	p.Jumps = append(p.Jumps,
		rule("mangle", "PREROUTING", tcp, "veneer: inbound TCP to the pod", "-j", ChainInbound),
		rule("mangle", "OUTPUT", tcp, "veneer: marks of the agent transparent connections", "-j", ChainMark))
	p.Routing = o.Routing()
}

// Routing is the policy routing tproxy mode uses with these options; the
// clean-up removes it whatever the mode.
func (o Options) Routing() *Routing {
	return &Routing{Mark: o.mark(), Table: o.routeTable(), Priority: 32000}
}

func (p *Plan) outbound(o Options, v6 bool) {
	out := strconv.Itoa(int(o.OutboundPort))
	uid, gid := strconv.Itoa(int(o.ProxyUID)), strconv.Itoa(int(o.ProxyGID))
	rs := []Rule{
		rule("nat", ChainOutbound, []string{"-m", "owner", "--uid-owner", uid}, "veneer: the agent own connections", "-j", "RETURN"),
	}
	if o.ProxyGID != 0 {
		rs = append(rs, rule("nat", ChainOutbound, []string{"-m", "owner", "--gid-owner", gid}, "veneer: the agent group connections", "-j", "RETURN"))
	}
	rs = append(rs,
		rule("nat", ChainOutbound, []string{"-o", "lo"}, "veneer: traffic inside the pod", "-j", "RETURN"),
		rule("nat", ChainOutbound, tcpPort(53), "veneer: DNS is left alone", "-j", "RETURN"))
	for _, port := range o.ExcludeOutboundPorts.Ports {
		rs = append(rs, rule("nat", ChainOutbound, tcpPort(port), "veneer: excluded outbound port "+strconv.Itoa(int(port)), "-j", "RETURN"))
	}
	for _, c := range o.ExcludeOutboundCIDRs {
		if c.Addr().Is6() != v6 {
			continue
		}
		rs = append(rs, rule("nat", ChainOutbound, []string{"-d", c.String()}, "veneer: excluded outbound CIDR "+c.String(), "-j", "RETURN"))
	}
	rs = append(rs, rule("nat", ChainOutbound, tcp, "veneer: capture outbound TCP", "-j", ChainOutRedirect))
	p.Chains = append(p.Chains, Chain{"nat", ChainOutbound}, Chain{"nat", ChainOutRedirect})
	p.Rules = append(p.Rules, rs...)
	p.Rules = append(p.Rules, rule("nat", ChainOutRedirect, tcp, "veneer: redirect to agent outbound port "+out, "-j", "REDIRECT", "--to-ports", out))
	p.Jumps = append(p.Jumps, rule("nat", "OUTPUT", tcp, "veneer: outbound TCP from the pod", "-j", ChainOutbound))
}
