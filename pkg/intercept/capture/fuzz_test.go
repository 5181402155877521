package capture

import (
	"strings"
	"testing"
)

// FuzzPlan: any port lists either fail validation with a one-line error or
// give a plan that is in sync with itself, whose rules jump only to chains
// it declares, and whose clean-up removes everything.
func FuzzPlan(f *testing.F) {
	f.Add("8080", "", uint16(15006), false, false)
	f.Add("*", "22,15006", uint16(15006), true, true)
	f.Add("80,443", "443", uint16(15001), false, true)
	f.Fuzz(func(t *testing.T, inbound, exclude string, proxy uint16, tproxy, outbound bool) {
		in, err1 := ParsePortSet("--inbound-ports", inbound)
		ex, err2 := ParsePortSet("--exclude-inbound-ports", exclude)
		if err1 != nil || err2 != nil {
			return
		}
		o := Options{InboundPorts: in, ExcludeInboundPorts: ex, ProxyPort: proxy, AgentPorts: []uint16{15000},
			Outbound: outbound, OutboundPort: 15001, ProxyUID: 1337, ProxyGID: 1337}
		if tproxy {
			o.Mode = ModeTproxy
		}
		if err := o.Validate(); err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("a validation error spans lines: %q", err)
			}
			return
		}
		for _, v6 := range []bool{false, true} {
			p := Build(o, v6)
			if _, changed := Restore(p.State(), p.State()); changed {
				t.Errorf("%+v: the plan is not in sync with itself", o)
			}
			declared := map[string]bool{}
			for _, c := range p.Chains {
				declared[c.Table+"/"+c.Name] = true
			}
			for _, r := range append(p.Rules, p.Jumps...) {
				for i, a := range r.Spec {
					if a == "-j" && strings.HasPrefix(r.Spec[i+1], ChainPrefix) && !declared[r.Table+"/"+r.Spec[i+1]] {
						t.Errorf("%+v: %s jumps to an undeclared chain", o, r)
					}
				}
			}
			cleanup, _ := Restore(Plan{}.State(), p.State())
			if _, changed := Restore(Plan{}.State(), Plan{}.State()); changed || (!p.Empty() && !strings.Contains(cleanup, "-X ")) {
				t.Errorf("%+v: the clean-up does not remove the chains:\n%s", o, cleanup)
			}
		}
	})
}
