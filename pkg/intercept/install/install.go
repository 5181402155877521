// Package install is veneer-init: it brings the current network namespace's
// nat tables to the capture plan (or removes the plan, or prints it), for
// each address family, and optionally proves that capture works.
//
//	opts, err := install.ParseFlags(os.Args[1:], os.Stdout)
//	err = install.Run(opts, logger)
package install

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/intercept/capture"
	"github.com/veneermesh/veneer/pkg/intercept/iptables"
	"github.com/veneermesh/veneer/pkg/intercept/routing"
)

// Options is everything veneer-init was asked to do.
type Options struct {
	Capture         capture.Options
	Backend         string // auto, legacy or nft
	IPv6            string // auto, on or off
	DryRun          bool   // print the iptables-restore input, change nothing
	Cleanup         bool   // remove everything veneer installed, nothing else
	Validate        bool   // after applying, prove a captured port reaches the agent
	ValidateTimeout time.Duration
	Out             io.Writer // where --dry-run prints
}

// step is the work for one address family, planned before anything is written.
type step struct {
	t       *iptables.Tables
	v6      bool
	want    capture.State
	have    capture.State
	routing *capture.Routing // tproxy mode's policy routing; nil otherwise
	input   string
	changed bool
}

// Run does what o asks. Every table is read and every change rendered before
// the first write, so a missing binary or capability fails with nothing
// changed; if a later family fails to apply, the earlier ones are rolled back.
func Run(o Options, log zerolog.Logger) error {
	mode, err := backend(o.Backend, log)
	if err != nil {
		return err
	}
	families, err := families(o.IPv6, log)
	if err != nil {
		return err
	}
	log.Info().Str("mode", modeName(o.Capture.Mode)).Bool("cleanup", o.Cleanup).
		Str("inbound_ports", o.Capture.InboundPorts.String()).
		Str("exclude_inbound_ports", o.Capture.ExcludeInboundPorts.String()).
		Uint16("proxy_port", o.Capture.ProxyPort).Bool("outbound", o.Capture.Outbound).
		Msg("capture plan")

	var steps []step
	for _, f := range families {
		t, err := iptables.Open(mode, f)
		if err != nil {
			return err
		}
		have, err := capture.Read(t)
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name(), err)
		}
		s := step{t: t, v6: f == iptables.IPv6, have: have, want: capture.Plan{}.State()}
		if !o.Cleanup {
			plan := capture.Build(o.Capture, s.v6)
			s.want, s.routing = plan.State(), plan.Routing
		}
		s.input, s.changed = capture.Restore(s.want, have)
		steps = append(steps, s)
	}

	if o.DryRun {
		for _, s := range steps {
			fmt.Fprintf(o.Out, "# %s-restore --noflush\n", s.t.Name())
			if !s.changed {
				fmt.Fprintf(o.Out, "# nothing to change: the rules are in place\n")
			}
			fmt.Fprint(o.Out, s.input)
			for _, c := range s.routing.Commands(s.v6) {
				fmt.Fprintf(o.Out, "# then: %s\n", c)
			}
		}
		return nil
	}

	for i, s := range steps {
		l := log.With().Str("iptables", s.t.Name()).Logger()
		// Routing before the rules that rely on it; stale routing after the
		// rules that relied on it are gone.
		if changed, err := routing.Ensure(s.routing, s.v6); err != nil {
			rollback(steps[:i], log)
			return fmt.Errorf("policy routing: %w", err)
		} else if changed {
			l.Info().Strs("routing", s.routing.Commands(s.v6)).Msg("policy routing set up")
		}
		if !s.changed {
			l.Info().Msg("rules already in place; nothing changed")
		} else if err := s.t.Restore(s.input); err != nil {
			rollback(steps[:i], log)
			return fmt.Errorf("applying rules: %w", err)
		} else {
			l.Info().Msg("rules applied")
		}
		if s.routing == nil {
			if changed, err := routing.Remove(o.Capture.Routing(), s.v6); err != nil {
				return fmt.Errorf("removing policy routing: %w", err)
			} else if changed {
				l.Info().Msg("policy routing of tproxy mode removed")
			}
		}
	}
	for _, s := range steps {
		now, err := capture.Read(s.t)
		if err != nil {
			return fmt.Errorf("%s: reading back: %w", s.t.Name(), err)
		}
		if !capture.InSync(s.want, now) {
			return fmt.Errorf("%s: rules read back differ from the plan (another process changed the tables meanwhile?): %q", s.t.Name(), now.Lines())
		}
		log.Info().Str("iptables", s.t.Name()).Strs("rules", now.Lines()).Msg("final rules")
	}

	if !o.Cleanup {
		migrateRequests(log)
	}

	if o.Validate && !o.Cleanup {
		if o.Capture.Mode == capture.ModeTproxy {
			return errors.New("--validate checks redirect mode; tproxy mode is not validated yet")
		}
		for _, s := range steps {
			if err := validate(s.t, o.Capture, o.ValidateTimeout); err != nil {
				return fmt.Errorf("--validate (%s): %w", s.t.Family, err)
			}
			log.Info().Str("iptables", s.t.Name()).Msg("validated: a captured port reaches the agent with its original destination")
		}
	}
	return nil
}

// rollback returns the tables of applied steps to what they held before.
func rollback(applied []step, log zerolog.Logger) {
	for _, s := range applied {
		if !s.changed {
			continue
		}
		input, _ := capture.Restore(s.have, s.want)
		if err := s.t.Restore(input); err != nil {
			log.Error().Err(err).Str("iptables", s.t.Name()).Msg("rolling back failed; run veneer-init --cleanup")
			continue
		}
		log.Warn().Str("iptables", s.t.Name()).Msg("rolled back")
	}
}

// migrateRequestsPath is the pod network namespace's setting that moves
// connections queued on a closing listener to another listener of the same
// SO_REUSEPORT group (Linux 5.14+), so that a restarting agent loses none.
const migrateRequestsPath = "/proc/sys/net/ipv4/tcp_migrate_req"

// migrateRequests sets it where it may; container runtimes mount /proc/sys
// read-only, and then the pod's securityContext.sysctls must set it.
func migrateRequests(log zerolog.Logger) {
	if err := os.WriteFile(migrateRequestsPath, []byte("1\n"), 0o644); err != nil {
		log.Warn().Err(err).Msg("could not set net.ipv4.tcp_migrate_req: an agent restart may reset connections still queued (set it in the pod's securityContext.sysctls)")
		return
	}
	log.Info().Msg("net.ipv4.tcp_migrate_req set: an agent restart hands queued connections to the new agent")
}

func modeName(m string) string {
	if m == "" {
		return capture.ModeRedirect
	}
	return m
}

func backend(s string, log zerolog.Logger) (iptables.Mode, error) {
	mode, auto, err := iptables.ParseMode(s)
	if err != nil || !auto {
		return mode, err
	}
	d, err := iptables.Detect(capture.ChainPrefix)
	if err != nil {
		return "", err
	}
	log.Info().Str("backend", string(d.Mode)).Str("reason", d.Reason).
		Int("legacy_rules", d.Rules[iptables.Legacy]).Int("nft_rules", d.Rules[iptables.NFT]).
		Msg("iptables backend detected")
	return d.Mode, nil
}

func families(ipv6 string, log zerolog.Logger) ([]iptables.Family, error) {
	v4 := []iptables.Family{iptables.IPv4}
	switch ipv6 {
	case "off":
		return v4, nil
	case "on":
		return append(v4, iptables.IPv6), nil
	case "auto", "":
		addr, err := globalIPv6()
		if err != nil {
			return nil, fmt.Errorf("--ipv6 auto: %w", err)
		}
		if addr == "" {
			log.Info().Msg("ipv6 off: no global IPv6 address in this namespace")
			return v4, nil
		}
		log.Info().Str("address", addr).Msg("ipv6 on: the namespace has a global IPv6 address")
		return append(v4, iptables.IPv6), nil
	}
	return nil, fmt.Errorf("--ipv6: %q is not a choice (auto, on or off)", ipv6)
}
