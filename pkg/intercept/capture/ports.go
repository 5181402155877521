package capture

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PortSet is a set of TCP ports as given on the command line: a comma-separated
// list such as "8080,9090", or "*" for every port. The zero value is the empty set.
type PortSet struct {
	All   bool     // every TCP port
	Ports []uint16 // sorted, without duplicates; empty when All is set
}

// ParsePortSet parses a flag value. flag names the input in errors, so that a user
// reads `--inbound-ports: "70000" is not a port (1-65535)`.
func ParsePortSet(flag, s string) (PortSet, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return PortSet{}, nil
	}
	if s == "*" {
		return PortSet{All: true}, nil
	}
	var ps PortSet
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "*" {
			return PortSet{}, fmt.Errorf("%s: %q mixes \"*\" with ports; use \"*\" alone or a list of ports", flag, s)
		}
		p, err := ParsePort(flag, f)
		if err != nil {
			return PortSet{}, err
		}
		ps.Ports = append(ps.Ports, p)
	}
	slices.Sort(ps.Ports)
	ps.Ports = slices.Compact(ps.Ports)
	return ps, nil
}

// ParsePort parses one TCP port, naming flag in the error.
func ParsePort(flag, s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s: %q is not a port (1-65535)", flag, s)
	}
	return uint16(n), nil
}

// Contains reports whether p is in the set.
func (ps PortSet) Contains(p uint16) bool {
	if ps.All {
		return true
	}
	_, ok := slices.BinarySearch(ps.Ports, p)
	return ok
}

// Empty reports whether the set holds no port.
func (ps PortSet) Empty() bool { return !ps.All && len(ps.Ports) == 0 }

func (ps PortSet) String() string {
	if ps.All {
		return "*"
	}
	s := make([]string, len(ps.Ports))
	for i, p := range ps.Ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}
