package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/proxy"
	"github.com/veneermesh/veneer/pkg/mesh/identity"
)

// startIdentity follows the agent's SVID from --spiffe-socket or
// --svid-dir; nil when neither is set (no mTLS).
func startIdentity(ctx context.Context, o Options, reg prometheus.Registerer, log zerolog.Logger) (*identity.Source, error) {
	switch {
	case o.SPIFFESocket != "":
		src, err := identity.FromWorkloadAPI(ctx, o.SPIFFESocket, reg, log)
		if err != nil {
			return nil, fmt.Errorf("--spiffe-socket: %w", err)
		}
		return src, nil
	case o.SVIDDir != "":
		return identity.FromFiles(ctx, o.SVIDDir, time.Second, reg, log)
	}
	return nil, nil
}

// checkMesh refuses a config that asks for mTLS when the agent has no
// identity to handshake with.
func checkMesh(c *config.Config, o Options, src *identity.Source) error {
	if src != nil {
		return nil
	}
	const fix = "needs an SVID: set --spiffe-socket ($SPIFFE_ENDPOINT_SOCKET) or --svid-dir"
	if len(c.Mesh.Peers) > 0 {
		return fmt.Errorf("mesh.peers %s", fix)
	}
	if mode := mtlsMode(c, c.Default, o); mode != proxy.MTLSOff {
		return fmt.Errorf("default.mtls: %s %s", mode, fix)
	}
	for _, p := range c.PortNumbers() {
		if mode := mtlsMode(c, c.Port(p), o); mode != proxy.MTLSOff {
			return fmt.Errorf("ports.%d.mtls: %s %s", p, mode, fix)
		}
	}
	return nil
}

// mtlsMode is a port section's mTLS mode: its own, else the default
// section's, else --mtls. Unlike the other settings, which a port's
// section replaces whole, the mode is inherited, as Istio's
// PeerAuthentication mode is by the ports that set none: a default of
// strict must not leave open a port that has a section for its routes.
func mtlsMode(c *config.Config, pc config.Port, o Options) string {
	for _, m := range []string{pc.MTLS, c.Default.MTLS} {
		if m != "" {
			return m
		}
	}
	return o.MTLS
}

// peers are the proxy's meshed destinations from cfg.
func peers(c *config.Config) []*proxy.Peer {
	var out []*proxy.Peer
	for _, p := range c.Mesh.Peers {
		pp := &proxy.Peer{Ports: p.Ports}
		for _, s := range p.CIDRs {
			pr, _ := config.ParseCIDR(s) // checked by config
			pp.Prefixes = append(pp.Prefixes, pr)
		}
		for _, s := range p.Principals {
			pat, _ := identity.ParsePattern(s)
			pp.Want = append(pp.Want, pat)
		}
		out = append(out, pp)
	}
	return out
}
