// Package capture decides which iptables rules send a pod's traffic to the
// veneer agent, and brings a nat table to that decision.
//
// The rules are data first: Build is a pure function from Options to a Plan,
// and everything else (the iptables-restore input, the check that a re-run
// finds its rules in place, the clean-up) is rendered from that one Plan:
//
//	plan := capture.Build(opts)
//	state, err := capture.Read(tables)            // what the table holds now
//	input, changed := capture.Restore(plan, state) // iptables-restore text
//	err = tables.Restore(input)                    // one atomic transaction
package capture

import (
	"fmt"
	"slices"
	"strconv"
)

// Table is the iptables table the plan lives in.
const Table = "nat"

// Chain names. Every chain veneer owns starts with ChainPrefix, so that
// clean-up can find all of them and touch nothing else.
const (
	ChainPrefix     = "VENEER_"
	ChainInbound    = "VENEER_INBOUND"     // decides, per destination port, what is captured
	ChainInRedirect = "VENEER_IN_REDIRECT" // hands a captured connection to the agent
)

// builtinChains are the nat chains that may hold jumps into veneer's chains.
var builtinChains = []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}

// Options is what the plan depends on, and nothing else.
type Options struct {
	// InboundPorts are the destination ports whose inbound TCP connections go
	// to the agent. Empty captures nothing inbound.
	InboundPorts PortSet
	// ExcludeInboundPorts are never captured, even when InboundPorts is "*".
	ExcludeInboundPorts PortSet
	// ProxyPort is the agent's inbound listener, the REDIRECT target.
	ProxyPort uint16
	// AgentPorts are the agent's other listening ports (its admin port). They
	// and ProxyPort are never captured.
	AgentPorts []uint16
}

// Validate reports the first option that cannot produce a working plan.
func (o Options) Validate() error {
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

// Rule is one iptables rule: the chain it is appended to and its
// specification, in the order and form iptables-save prints it, so that a rule
// read back from the kernel compares equal to the planned one.
type Rule struct {
	Chain string
	Spec  []string
}

// Plan is the complete set of rules veneer wants in Table.
type Plan struct {
	Chains []string // veneer's own chains, each created or flushed and refilled
	Rules  []Rule   // the rules of those chains, in order
	Jumps  []Rule   // the rules in built-in chains that lead into Chains
}

// Empty reports whether the plan installs nothing.
func (p Plan) Empty() bool { return len(p.Chains) == 0 && len(p.Jumps) == 0 }

// rule builds a rule whose matches come before its comment and its target
// after, as iptables-save orders them.
func rule(chain string, matches []string, comment string, target ...string) Rule {
	spec := append(append([]string{}, matches...), "-m", "comment", "--comment", comment)
	return Rule{Chain: chain, Spec: append(spec, target...)}
}

func tcpPort(p uint16) []string {
	return []string{"-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(int(p))}
}

var tcp = []string{"-p", "tcp"}

// Build computes the plan for o. It is pure: the same options give the same
// plan, whatever the machine. o must have passed Validate.
func Build(o Options) Plan {
	var captured []Rule
	switch {
	case o.InboundPorts.All:
		// Every port but the agent's and the excluded ones: RETURN those first.
		agent := append([]uint16{o.ProxyPort}, o.AgentPorts...)
		for _, p := range agent {
			captured = append(captured, rule(ChainInbound, tcpPort(p),
				"veneer: never capture agent port "+strconv.Itoa(int(p)), "-j", "RETURN"))
		}
		for _, p := range o.ExcludeInboundPorts.Ports {
			if o.agentPort(p) {
				continue
			}
			captured = append(captured, rule(ChainInbound, tcpPort(p),
				"veneer: excluded inbound port "+strconv.Itoa(int(p)), "-j", "RETURN"))
		}
		captured = append(captured, rule(ChainInbound, tcp,
			"veneer: capture every other inbound TCP port", "-j", ChainInRedirect))
	default:
		// A list needs no RETURN rules: what is excluded is simply not listed.
		for _, p := range o.InboundPorts.Ports {
			if !o.Captures(p) {
				continue
			}
			captured = append(captured, rule(ChainInbound, tcpPort(p),
				"veneer: capture inbound port "+strconv.Itoa(int(p)), "-j", ChainInRedirect))
		}
	}
	if len(captured) == 0 {
		return Plan{}
	}
	proxy := strconv.Itoa(int(o.ProxyPort))
	return Plan{
		Chains: []string{ChainInbound, ChainInRedirect},
		Rules: append(captured, rule(ChainInRedirect, tcp,
			"veneer: redirect to agent port "+proxy, "-j", "REDIRECT", "--to-ports", proxy)),
		Jumps: []Rule{rule("PREROUTING", tcp, "veneer: inbound TCP to the pod", "-j", ChainInbound)},
	}
}
