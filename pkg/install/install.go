// Package install is veneer-init: it brings the current network namespace's
// nat tables to the capture plan (or removes the plan, or prints it), for
// each address family, and optionally proves that capture works.
//
//	opts, err := install.ParseFlags(os.Args[1:], os.Stdout)
//	err = install.Run(opts, logger)
package install

import (
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/capture"
	"github.com/veneermesh/veneer/pkg/iptables"
)

// Options is everything veneer-init was asked to do.
type Options struct {
	Capture capture.Options
	// ProxyUID and ProxyGID identify the agent's own traffic, which outbound
	// capture must never catch. Inbound capture does not need them.
	ProxyUID, ProxyGID uint32
	Backend            string // auto, legacy or nft
	IPv6               string // auto, on or off
	DryRun             bool   // print the iptables-restore input, change nothing
	Cleanup            bool   // remove everything veneer installed, nothing else
	Validate           bool   // after applying, prove a captured port reaches the agent
	ValidateTimeout    time.Duration
	Out                io.Writer // where --dry-run prints
}

// step is the work for one address family, planned before anything is written.
type step struct {
	t       *iptables.Tables
	have    capture.State
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
	want := capture.Plan{}.State()
	if !o.Cleanup {
		plan := capture.Build(o.Capture)
		want = plan.State()
		log.Info().Str("inbound_ports", o.Capture.InboundPorts.String()).
			Str("exclude_inbound_ports", o.Capture.ExcludeInboundPorts.String()).
			Uint16("proxy_port", o.Capture.ProxyPort).Bool("captures_anything", !plan.Empty()).
			Msg("capture plan")
	}

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
		input, changed := capture.Restore(want, have)
		steps = append(steps, step{t: t, have: have, input: input, changed: changed})
	}

	if o.DryRun {
		for _, s := range steps {
			fmt.Fprintf(o.Out, "# %s-restore --noflush\n", s.t.Name())
			if !s.changed {
				fmt.Fprintf(o.Out, "# nothing to change: the rules are in place\n")
			}
			fmt.Fprint(o.Out, s.input)
		}
		return nil
	}

	for i, s := range steps {
		l := log.With().Str("iptables", s.t.Name()).Logger()
		if !s.changed {
			l.Info().Msg("rules already in place; nothing changed")
			continue
		}
		if err := s.t.Restore(s.input); err != nil {
			rollback(steps[:i], want, log)
			return fmt.Errorf("applying rules: %w", err)
		}
		l.Info().Msg("rules applied")
	}
	for _, s := range steps {
		now, err := capture.Read(s.t)
		if err != nil {
			return fmt.Errorf("%s: reading back: %w", s.t.Name(), err)
		}
		if !capture.InSync(want, now) {
			return fmt.Errorf("%s: rules read back differ from the plan (another process changed the nat table meanwhile?): %q", s.t.Name(), now.Lines())
		}
		log.Info().Str("iptables", s.t.Name()).Strs("rules", now.Lines()).Msg("final rules")
	}

	if o.Validate && !o.Cleanup {
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
func rollback(applied []step, now capture.State, log zerolog.Logger) {
	for _, s := range applied {
		if !s.changed {
			continue
		}
		input, _ := capture.Restore(s.have, now)
		if err := s.t.Restore(input); err != nil {
			log.Error().Err(err).Str("iptables", s.t.Name()).Msg("rolling back failed; run veneer-init --cleanup")
			continue
		}
		log.Warn().Str("iptables", s.t.Name()).Msg("rolled back")
	}
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
