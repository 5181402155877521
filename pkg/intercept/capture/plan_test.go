package capture

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func ports(t *testing.T, s string) PortSet {
	t.Helper()
	ps, err := ParsePortSet("--test", s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("rendered rules differ from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestBuildGolden(t *testing.T) {
	for _, tc := range []struct {
		name             string
		inbound, exclude string
		proxy            uint16
	}{
		{"default", "8080", "", 15006},
		{"several-ports", "9090,8080,8080,3306", "", 15006},
		{"list-with-exclusions", "8080,9090,3306", "3306", 15006},
		{"all-ports", "*", "", 15006},
		{"all-ports-with-exclusions", "*", "22,15006,9100", 15006},
		{"custom-proxy-port", "8080", "", 16000},
		{"nothing-captured", "", "", 15006},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{
				InboundPorts:        ports(t, tc.inbound),
				ExcludeInboundPorts: ports(t, tc.exclude),
				ProxyPort:           tc.proxy,
				AgentPorts:          []uint16{15000},
			}
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			p := Build(o, false)
			input, changed := Restore(p.State(), State{})
			if changed != !p.Empty() {
				t.Errorf("changed = %v for an empty table; want %v", changed, !p.Empty())
			}
			golden(t, tc.name, input)

			// The plan applied is in sync with itself: a re-run changes nothing.
			if input, changed := Restore(p.State(), p.State()); changed || input != "" {
				t.Errorf("re-run on its own rules: changed=%v input=%q; want no change", changed, input)
			}
			// Clean-up of what it installed leaves nothing of veneer's.
			cleanup, changed := Restore(Plan{}.State(), p.State())
			if changed != !p.Empty() {
				t.Errorf("clean-up changed=%v; want %v", changed, !p.Empty())
			}
			golden(t, tc.name+".cleanup", cleanup)
		})
	}
}

func TestBuildNeverCapturesAgentPorts(t *testing.T) {
	o := Options{InboundPorts: PortSet{All: true}, ProxyPort: 15006, AgentPorts: []uint16{15000}}
	p := Build(o, false)
	for _, want := range []string{"--dport 15006 -m comment --comment \"veneer: never capture agent port 15006\" -j RETURN",
		"--dport 15000 -m comment --comment \"veneer: never capture agent port 15000\" -j RETURN"} {
		if !strings.Contains(strings.Join(p.State()["nat"].Chains[ChainInbound], "\n"), want) {
			t.Errorf("plan for \"*\" lacks %q", want)
		}
	}
	// The RETURNs must come before the catch-all, or they would never match.
	lines := p.State()["nat"].Chains[ChainInbound]
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, "-j "+ChainInRedirect) {
		t.Errorf("last rule of %s = %q; want the catch-all jump to %s", ChainInbound, last, ChainInRedirect)
	}
}

// A table that holds a different, partial or duplicated version of veneer's
// rules (an older init with another proxy port, a killed re-run) is brought to
// the plan in one transaction that keeps the jump already in place.
func TestRestoreStaleGolden(t *testing.T) {
	p := Build(Options{InboundPorts: ports(t, "8080"), ProxyPort: 15006, AgentPorts: []uint16{15000}}, false)
	stale := State{"nat": TableState{
		Chains: map[string][]string{
			ChainInbound:      {`-A VENEER_INBOUND -p tcp -m tcp --dport 8080 -m comment --comment "veneer: capture inbound port 8080" -j VENEER_IN_REDIRECT`},
			ChainInRedirect:   {`-A VENEER_IN_REDIRECT -p tcp -m comment --comment "veneer: redirect to agent port 16000" -j REDIRECT --to-ports 16000`},
			"VENEER_OUTBOUND": {`-A VENEER_OUTBOUND -p tcp -j RETURN`},
		},
		Jumps: []string{
			`-A PREROUTING -p tcp -m comment --comment "veneer: inbound TCP to the pod" -j VENEER_INBOUND`,
			`-A PREROUTING -p tcp -m comment --comment "veneer: inbound TCP to the pod" -j VENEER_INBOUND`,
			`-A OUTPUT -p tcp -j VENEER_OUTBOUND`,
		},
	}}
	if InSync(p.State(), stale) {
		t.Fatal("InSync = true for a stale table; want false")
	}
	input, changed := Restore(p.State(), stale)
	if !changed {
		t.Fatal("changed = false for a stale table; want true")
	}
	golden(t, "stale", input)

	// A partial table: chains there, the jump missing.
	partial := p.State()
	nat := partial["nat"]
	nat.Jumps = nil
	partial["nat"] = nat
	input, _ = Restore(p.State(), partial)
	golden(t, "partial", input)
}

// tproxy mode and outbound capture, for both families: the excluded CIDRs
// of the other family are left out.
func TestBuildModesGolden(t *testing.T) {
	cidrs := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:10:96::/112")}
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"tproxy", Options{Mode: ModeTproxy, InboundPorts: ports(t, "8080,9090"), ProxyPort: 15006, AgentPorts: []uint16{15000}}},
		{"tproxy-all-ports", Options{Mode: ModeTproxy, InboundPorts: ports(t, "*"), ExcludeInboundPorts: ports(t, "22"), ProxyPort: 15006, AgentPorts: []uint16{15000}}},
		{"outbound", Options{InboundPorts: ports(t, "8080"), ProxyPort: 15006, AgentPorts: []uint16{15000},
			Outbound: true, OutboundPort: 15001, ExcludeOutboundPorts: ports(t, "5432"), ExcludeOutboundCIDRs: cidrs, ProxyUID: 1337, ProxyGID: 1337}},
	} {
		for _, v6 := range []bool{false, true} {
			name := tc.name
			if v6 {
				name += "-ipv6"
			}
			t.Run(name, func(t *testing.T) {
				if err := tc.o.Validate(); err != nil {
					t.Fatal(err)
				}
				p := Build(tc.o, v6)
				input, _ := Restore(p.State(), State{})
				for _, c := range p.Routing.Commands(v6) {
					input += "# " + c + "\n"
				}
				golden(t, name, input)
				if _, changed := Restore(p.State(), p.State()); changed {
					t.Error("a re-run over its own rules would change something")
				}
				// Switching back to plain redirect removes every mangle rule.
				back, _ := Restore(Build(Options{InboundPorts: ports(t, "8080"), ProxyPort: 15006}, v6).State(), p.State())
				if tc.o.Mode == ModeTproxy && !strings.Contains(back, "*mangle\n") {
					t.Errorf("switching to redirect leaves the mangle table alone:\n%s", back)
				}
			})
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"proxy port captured", Options{InboundPorts: PortSet{Ports: []uint16{8080, 15006}}, ProxyPort: 15006},
			"--inbound-ports: 15006 is one of the agent's own ports (15006), which are never captured"},
		{"admin port captured", Options{InboundPorts: PortSet{Ports: []uint16{15000}}, ProxyPort: 15006, AgentPorts: []uint16{15000}},
			"--inbound-ports: 15000 is one of the agent's own ports (15006,15000), which are never captured"},
		{"exclude all", Options{InboundPorts: PortSet{All: true}, ExcludeInboundPorts: PortSet{All: true}, ProxyPort: 15006},
			`--exclude-inbound-ports: "*" would capture nothing; to capture nothing, set --inbound-ports to ""`},
		{"no proxy port", Options{InboundPorts: PortSet{All: true}}, "--proxy-port: 0 is not a port (1-65535)"},
		{"bad mode", Options{Mode: "ebpf", ProxyPort: 15006}, `--mode: "ebpf" is not a mode (redirect or tproxy)`},
		{"outbound port clash", Options{ProxyPort: 15006, Outbound: true, OutboundPort: 15006, ProxyUID: 1337},
			"--outbound-port: 15006 is already one of the agent's ports (15006)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if err == nil || err.Error() != tc.want {
				t.Errorf("Validate() = %v; want %q", err, tc.want)
			}
		})
	}
}

func TestParsePortSet(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "8080", want: "8080"},
		{in: " 9090, 8080 ,9090", want: "8080,9090"},
		{in: "*", want: "*"},
		{in: "", want: ""},
		{in: "70000", err: `--p: "70000" is not a port (1-65535)`},
		{in: "0", err: `--p: "0" is not a port (1-65535)`},
		{in: "-1", err: `--p: "-1" is not a port (1-65535)`},
		{in: "80,http", err: `--p: "http" is not a port (1-65535)`},
		{in: "80,,81", err: `--p: "" is not a port (1-65535)`},
		{in: "80,*", err: `--p: "80,*" mixes "*" with ports; use "*" alone or a list of ports`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ps, err := ParsePortSet("--p", tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("ParsePortSet(%q) error = %v; want %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || ps.String() != tc.want {
				t.Errorf("ParsePortSet(%q) = %q, %v; want %q", tc.in, ps, err, tc.want)
			}
		})
	}
}

// Regression: iptables-save escapes an apostrophe in a comment, so a rule
// with one never reads back equal to its plan and veneer-init fails.
func TestCommentsReadBackVerbatim(t *testing.T) {
	safe := regexp.MustCompile(`^[A-Za-z0-9 :,./*-]+$`)
	o := Options{InboundPorts: PortSet{All: true}, ExcludeInboundPorts: PortSet{Ports: []uint16{22}}, ProxyPort: 15006,
		AgentPorts: []uint16{15000}, Outbound: true, OutboundPort: 15001, ProxyUID: 1337, ProxyGID: 1337,
		ExcludeOutboundPorts: PortSet{Ports: []uint16{5432}}, ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, mode := range []string{ModeRedirect, ModeTproxy} {
		o.Mode = mode
		p := Build(o, false)
		for _, r := range append(p.Rules, p.Jumps...) {
			for i, a := range r.Spec {
				if i > 0 && r.Spec[i-1] == "--comment" && !safe.MatchString(a) {
					t.Errorf("comment %q has characters iptables-save would escape", a)
				}
			}
		}
	}
}
