package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/proxy"
	"github.com/veneermesh/veneer/pkg/decor"
	_ "github.com/veneermesh/veneer/pkg/decor/all" // every decoration's module
	"github.com/veneermesh/veneer/pkg/decor/authz"
	"github.com/veneermesh/veneer/pkg/mesh/identity"
)

// loadConfig is the config Run starts with: the file's, or the defaults
// when there is no file.
func loadConfig(path string, log zerolog.Logger) (*config.Config, error) {
	if path == "" {
		return config.Default(decor.Schema()), nil
	}
	c, err := config.Load(path, decor.Schema())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// An optional ConfigMap not created (yet): the defaults, until
		// the file appears.
		log.Warn().Str("config", path).Msg("no config file; running with the defaults until it appears")
		return config.Default(decor.Schema()), nil
	case err != nil:
		return nil, fmt.Errorf("--config: %w", err)
	}
	return c, nil
}

// runningConfig is the config the sides run with; it serves GET /config.
type runningConfig struct {
	sides    []*side
	opts     Options
	identity *identity.Source // nil: no mTLS
	active   atomic.Pointer[config.Config]
}

// apply gives c to every side: first to the HTTP servers, whose error stops
// it before any proxy's policies change, then to the proxies.
func (rc *runningConfig) apply(c *config.Config) error {
	if err := checkMesh(c, rc.opts, rc.identity); err != nil {
		return err
	}
	for _, sd := range rc.sides {
		if err := sd.http.Apply(c); err != nil {
			return err
		}
	}
	for _, sd := range rc.sides {
		sd.proxy.SetPolicies(policies(c, sd.dir, rc.opts))
	}
	rc.active.Store(c)
	return nil
}

func (rc *runningConfig) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rc.active.Load())
}

// policies are the proxy's per-port decisions from cfg, for one direction:
// outbound has one section for every destination.
func policies(cfg *config.Config, dir string, o Options) *proxy.Policies {
	policy := func(pc config.Port) *proxy.Policy {
		pol := &proxy.Policy{Protocol: pc.Protocol, SniffTimeout: pc.SniffTimeout.D(), IdleTimeout: pc.TCP.IdleTimeout.D(), MTLS: mtlsMode(cfg, pc, o)}
		if pc.TCP.Authz != nil {
			pol.Authz = authz.New(authz.Config(config.ValueOf[authz.TCPConfig](pc.TCP.Authz)))
		}
		switch pc.ProxyProtocol {
		case "v1":
			pol.ProxyProtocol = 1
		case "v2":
			pol.ProxyProtocol = 2
		}
		return pol
	}
	if dir == "outbound" {
		out := policy(cfg.Outbound)
		out.MTLS = proxy.MTLSOff // outbound, mTLS is by destination: the peers
		return &proxy.Policies{Default: out, Peers: peers(cfg)}
	}
	ps := &proxy.Policies{Ports: map[uint16]*proxy.Policy{}, Default: policy(cfg.Default)}
	for _, port := range cfg.PortNumbers() {
		ps.Ports[port] = policy(cfg.Port(port))
	}
	return ps
}
