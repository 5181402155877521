package capture

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// String renders the rule as iptables-save prints it: "-A CHAIN spec...", the
// comment quoted.
func (r Rule) String() string { return render("-A", r.Chain, r.Spec) }

func render(op, chain string, spec []string) string {
	var b strings.Builder
	b.WriteString(op + " " + chain)
	for i, a := range spec {
		b.WriteByte(' ')
		if i > 0 && spec[i-1] == "--comment" {
			b.WriteString(`"` + a + `"`)
			continue
		}
		b.WriteString(a)
	}
	return b.String()
}

// State is what a nat table holds of veneer's now.
type State struct {
	// Chains maps each chain named with ChainPrefix to its rules, as
	// iptables-save lines ("-A VENEER_INBOUND ...").
	Chains map[string][]string
	// Jumps are the lines of built-in chains that jump into veneer's chains.
	Jumps []string
}

// Lister reads a table the way `iptables -t TABLE -S` does.
type Lister interface {
	ListChains(table string) ([]string, error)
	List(table, chain string) ([]string, error)
}

// Read collects veneer's chains and the jumps into them from t.
func Read(t Lister) (State, error) {
	s := State{Chains: map[string][]string{}}
	chains, err := t.ListChains(Table)
	if err != nil {
		return State{}, fmt.Errorf("listing %s chains: %w", Table, err)
	}
	for _, c := range chains {
		if !strings.HasPrefix(c, ChainPrefix) {
			continue
		}
		lines, err := t.List(Table, c)
		if err != nil {
			return State{}, fmt.Errorf("listing chain %s: %w", c, err)
		}
		s.Chains[c] = slices.DeleteFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "-A ") })
	}
	for _, c := range builtinChains {
		lines, err := t.List(Table, c)
		if err != nil {
			return State{}, fmt.Errorf("listing chain %s: %w", c, err)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "-A ") && strings.Contains(l, " -j "+ChainPrefix) {
				s.Jumps = append(s.Jumps, l)
			}
		}
	}
	return s, nil
}

// Lines returns every rule of the state, own chains first in name order, then
// the jumps: what a log line shows as "the final rules".
func (s State) Lines() []string {
	var out []string
	for _, c := range slices.Sorted(maps.Keys(s.Chains)) {
		out = append(out, s.Chains[c]...)
	}
	return append(out, s.Jumps...)
}

// State is the table p describes: what a table holds once p is applied to it.
func (p Plan) State() State {
	s := State{Chains: map[string][]string{}}
	for _, c := range p.Chains {
		s.Chains[c] = []string{}
	}
	for _, r := range p.Rules {
		s.Chains[r.Chain] = append(s.Chains[r.Chain], r.String())
	}
	for _, j := range p.Jumps {
		s.Jumps = append(s.Jumps, j.String())
	}
	return s
}

// InSync reports whether have is exactly want: the same chains with the same
// rules in the same order, the same jumps, nothing else of veneer's.
func InSync(want, have State) bool {
	if len(want.Chains) != len(have.Chains) {
		return false
	}
	for c, w := range want.Chains {
		h, ok := have.Chains[c]
		if !ok || !slices.Equal(w, h) {
			return false
		}
	}
	w, h := slices.Clone(want.Jumps), slices.Clone(have.Jumps)
	slices.Sort(w)
	slices.Sort(h)
	return slices.Equal(w, h)
}

// Restore renders the iptables-restore --noflush input that turns a table
// holding have into one holding want in one transaction, and whether anything
// needs to change. want is usually Build(opts).State(); Plan{}.State() is the
// clean-up; the state read before a failed step is the roll-back.
//
// Declaring a chain (":NAME - [0:0]") in a --noflush transaction creates it or
// flushes it; the rules that follow refill it before the transaction commits,
// so captured traffic never meets a half-written chain. Jumps already in
// place stay where they are; stale ones are deleted, then stale chains.
func Restore(want, have State) (input string, changed bool) {
	if InSync(want, have) {
		return "", false
	}
	var b strings.Builder
	line := func(l string) { b.WriteString(l + "\n") }

	line("*" + Table)
	var stale []string
	for c := range have.Chains {
		if _, ok := want.Chains[c]; !ok {
			stale = append(stale, c)
		}
	}
	slices.Sort(stale)
	wanted := slices.Sorted(maps.Keys(want.Chains))
	for _, c := range append(wanted, stale...) {
		line(":" + c + " - [0:0]")
	}

	// Keep one copy of each wanted jump that is already there; delete the rest.
	missing := map[string]int{}
	for _, j := range want.Jumps {
		missing[j]++
	}
	for _, j := range have.Jumps {
		if missing[j] > 0 {
			missing[j]--
			continue
		}
		line("-D" + strings.TrimPrefix(j, "-A"))
	}
	for _, c := range stale {
		line("-X " + c)
	}
	for _, c := range wanted {
		for _, r := range want.Chains[c] {
			line(r)
		}
	}
	for _, j := range want.Jumps {
		if missing[j] > 0 {
			missing[j]--
			line(j)
		}
	}
	line("COMMIT")
	return b.String(), true
}
