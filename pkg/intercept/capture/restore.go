package capture

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// String renders the rule as iptables-save prints it: "-A CHAIN spec...", the
// comment quoted.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString("-A " + r.Chain)
	for i, a := range r.Spec {
		b.WriteByte(' ')
		if i > 0 && r.Spec[i-1] == "--comment" {
			b.WriteString(`"` + a + `"`)
			continue
		}
		b.WriteString(a)
	}
	return b.String()
}

// TableState is what one table holds of veneer's.
type TableState struct {
	// Chains maps each chain named with ChainPrefix to its rules, as
	// iptables-save lines ("-A VENEER_INBOUND ...").
	Chains map[string][]string
	// Jumps are the lines of built-in chains that jump into veneer's chains.
	Jumps []string
}

// State is what the tables hold of veneer's, by table name. A table that is
// missing holds nothing of veneer's.
type State map[string]TableState

// Lister reads a table the way `iptables -t TABLE -S` does.
type Lister interface {
	ListChains(table string) ([]string, error)
	List(table, chain string) ([]string, error)
}

// Read collects veneer's chains and the jumps into them from every table
// veneer writes, so that a re-run in another mode also clears the other.
func Read(t Lister) (State, error) {
	s := State{}
	for _, table := range Tables {
		ts := TableState{Chains: map[string][]string{}}
		chains, err := t.ListChains(table)
		if err != nil {
			return nil, fmt.Errorf("listing %s chains: %w", table, err)
		}
		for _, c := range chains {
			if !strings.HasPrefix(c, ChainPrefix) {
				continue
			}
			lines, err := t.List(table, c)
			if err != nil {
				return nil, fmt.Errorf("listing %s chain %s: %w", table, c, err)
			}
			ts.Chains[c] = slices.DeleteFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "-A ") })
		}
		for _, c := range builtinChains[table] {
			lines, err := t.List(table, c)
			if err != nil {
				return nil, fmt.Errorf("listing %s chain %s: %w", table, c, err)
			}
			for _, l := range lines {
				if strings.HasPrefix(l, "-A ") && strings.Contains(l, " -j "+ChainPrefix) {
					ts.Jumps = append(ts.Jumps, l)
				}
			}
		}
		s[table] = ts
	}
	return s, nil
}

// Lines returns every rule of the state, table by table, own chains first
// in name order, then the jumps: what a log line shows as "the final rules".
func (s State) Lines() []string {
	var out []string
	for _, table := range Tables {
		ts := s[table]
		for _, c := range slices.Sorted(maps.Keys(ts.Chains)) {
			for _, l := range ts.Chains[c] {
				out = append(out, table+": "+l)
			}
		}
		for _, l := range ts.Jumps {
			out = append(out, table+": "+l)
		}
	}
	return out
}

// State is the tables p describes: what they hold once p is applied.
func (p Plan) State() State {
	s := State{}
	get := func(table string) TableState {
		ts, ok := s[table]
		if !ok {
			ts = TableState{Chains: map[string][]string{}}
		}
		return ts
	}
	for _, c := range p.Chains {
		ts := get(c.Table)
		ts.Chains[c.Name] = []string{}
		s[c.Table] = ts
	}
	for _, r := range p.Rules {
		ts := get(r.Table)
		ts.Chains[r.Chain] = append(ts.Chains[r.Chain], r.String())
		s[r.Table] = ts
	}
	for _, j := range p.Jumps {
		ts := get(j.Table)
		ts.Jumps = append(ts.Jumps, j.String())
		s[j.Table] = ts
	}
	return s
}

// InSync reports whether have is exactly want in every table: the same
// chains with the same rules in the same order, the same jumps, nothing
// else of veneer's.
func InSync(want, have State) bool {
	for _, table := range Tables {
		if !tableInSync(want[table], have[table]) {
			return false
		}
	}
	return true
}

func tableInSync(want, have TableState) bool {
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

// Restore renders the iptables-restore --noflush input that turns tables
// holding have into tables holding want, one transaction per table that
// changes, and whether anything needs to change. want is usually
// Build(opts, v6).State(); Plan{}.State() is the clean-up; the state read
// before a failed step is the roll-back.
//
// Declaring a chain (":NAME - [0:0]") in a --noflush transaction creates it or
// flushes it; the rules that follow refill it before the transaction commits,
// so captured traffic never meets a half-written chain. Jumps already in
// place stay where they are; stale ones are deleted, then stale chains.
func Restore(want, have State) (input string, changed bool) {
	var b strings.Builder
	for _, table := range Tables {
		if tableInSync(want[table], have[table]) {
			continue
		}
		changed = true
		restoreTable(&b, table, want[table], have[table])
	}
	return b.String(), changed
}

func restoreTable(b *strings.Builder, table string, want, have TableState) {
	line := func(l string) { b.WriteString(l + "\n") }
	line("*" + table)
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
}

// Commands renders the routing as the `ip` commands that would set it up,
// for --dry-run and the logs.
func (r *Routing) Commands(v6 bool) []string {
	if r == nil {
		return nil
	}
	fam, dst := "-4", "0.0.0.0/0"
	if v6 {
		fam, dst = "-6", "::/0"
	}
	return []string{
		fmt.Sprintf("ip %s rule add fwmark 0x%x lookup %d priority %d", fam, r.Mark, r.Table, r.Priority),
		fmt.Sprintf("ip %s route add local %s dev lo table %d", fam, dst, r.Table),
	}
}
