// Package routing sets up the policy routing of tproxy mode through
// netlink: a rule that looks up marked packets in a table of their own, and
// in that table one route that delivers everything locally. The app's replies
// to a client address the agent borrowed are marked, and so come back to the
// agent instead of leaving the pod.
//
//	changed, err := routing.Ensure(plan.Routing, false) // ip -4 rule/route
//	changed, err = routing.Remove(plan.Routing, false)  // clean-up
package routing

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veneermesh/veneer/pkg/intercept/capture"
)

func family(v6 bool) int {
	if v6 {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

func everything(v6 bool) *net.IPNet {
	if v6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

func (w wanted) rule() *netlink.Rule {
	r := netlink.NewRule()
	r.Family = family(w.v6)
	r.Mark = w.r.Mark
	r.Table = w.r.Table
	r.Priority = w.r.Priority
	return r
}

func (w wanted) route() (*netlink.Route, error) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("finding lo: %w", err)
	}
	return &netlink.Route{
		Family: family(w.v6), Table: w.r.Table, Type: unix.RTN_LOCAL, Scope: unix.RT_SCOPE_HOST,
		Dst: everything(w.v6), LinkIndex: lo.Attrs().Index,
	}, nil
}

type wanted struct {
	r  capture.Routing
	v6 bool
}

// hasRule reports whether the mark's rule is in place.
func (w wanted) hasRule() (bool, error) {
	rules, err := netlink.RuleList(family(w.v6))
	if err != nil {
		return false, fmt.Errorf("listing ip rules: %w", err)
	}
	for _, r := range rules {
		if r.Mark == w.r.Mark && r.Table == w.r.Table {
			return true, nil
		}
	}
	return false, nil
}

func (w wanted) routes() ([]netlink.Route, error) {
	rs, err := netlink.RouteListFiltered(family(w.v6), &netlink.Route{Table: w.r.Table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing routes of table %d: %w", w.r.Table, err)
	}
	return rs, nil
}

// Ensure puts the rule and the route in place, changing nothing that is
// already there, and reports whether it changed anything.
func Ensure(r *capture.Routing, v6 bool) (bool, error) {
	if r == nil {
		return false, nil
	}
	w := wanted{*r, v6}
	changed := false
	want, err := w.route()
	if err != nil {
		return false, err
	}
	rs, err := w.routes()
	if err != nil {
		return false, err
	}
	if len(rs) != 1 || rs[0].Type != unix.RTN_LOCAL || rs[0].LinkIndex != want.LinkIndex {
		if err := netlink.RouteReplace(want); err != nil {
			return false, fmt.Errorf("adding `%s`: %w", r.Commands(v6)[1], explain(err))
		}
		changed = true
	}
	ok, err := w.hasRule()
	if err != nil {
		return changed, err
	}
	if !ok {
		if err := netlink.RuleAdd(w.rule()); err != nil {
			return changed, fmt.Errorf("adding `%s`: %w", r.Commands(v6)[0], explain(err))
		}
		changed = true
	}
	return changed, nil
}

// Remove takes the rule and every route of the table away, and reports
// whether anything was there.
func Remove(r *capture.Routing, v6 bool) (bool, error) {
	if r == nil {
		return false, nil
	}
	w := wanted{*r, v6}
	changed := false
	for {
		ok, err := w.hasRule()
		if err != nil || !ok {
			if err != nil {
				return changed, err
			}
			break
		}
		if err := netlink.RuleDel(w.rule()); err != nil {
			return changed, fmt.Errorf("removing the fwmark rule: %w", explain(err))
		}
		changed = true
	}
	rs, err := w.routes()
	if err != nil {
		return changed, err
	}
	for _, rt := range rs {
		if err := netlink.RouteDel(&rt); err != nil {
			return changed, fmt.Errorf("removing a route of table %d: %w", r.Table, explain(err))
		}
		changed = true
	}
	return changed, nil
}

func explain(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w: veneer-init needs the NET_ADMIN capability", err)
	}
	return err
}
