// Package config is the frame of the agent's configuration file: one YAML
// document of sections (the default, one per port, outbound), each with
// its protocol, its TCP settings, its HTTP decorations and its routes. The
// frame does not know the decorations: each one's block (rateLimit,
// fault, ...) is handed to the module that owns it (pkg/decor's Schema),
// which decodes it strictly, checks it and fills its defaults. An unknown
// field, a bad duration, a percentage over 100, a bad CIDR or port is an
// error naming it.
//
//	cfg, err := config.Load("/etc/veneer/config.yaml", decor.Schema())
//	port := cfg.Port(8080)                                   // the port's section, or the default
//	rl, ok := config.Get[ratelimit.Config](port.HTTP, "rateLimit") // a block, as its module decoded it
//
// Without a file, Default(schema) is used: protocol auto on every captured
// port, and each decoration as its module has it when left out (access log
// and metrics on, every other off). deploy/config.yaml shows every field.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/veneermesh/veneer/pkg/mesh/identity"
)

// Config is the whole file.
type Config struct {
	// Default applies to every captured port without an entry in Ports.
	Default Port `yaml:"default" json:"default"`
	// Ports holds per-port settings, keyed by port number. A port's entry
	// replaces Default for that port whole: fields it leaves out take the
	// built-in defaults, not Default's.
	Ports map[string]Port `yaml:"ports" json:"ports,omitempty"`
	// Outbound applies to the app's own outgoing connections, when
	// veneer-init captures them (--outbound): protocol selection and the
	// decorations that make sense for a client (access log, metrics,
	// timeouts, retries, fault injection, headers). Its routes match the
	// request path.
	Outbound Port `yaml:"outbound" json:"outbound"`
	// Stats bounds the per-path profiler at the admin /stats endpoint.
	Stats Stats `yaml:"stats" json:"stats"`
	// Mesh lists the meshed destinations the app reaches (with outbound
	// capture): the agent connects to them with mTLS, never in plaintext.
	Mesh Mesh `yaml:"mesh" json:"mesh"`

	ports map[uint16]Port // Ports, parsed
}

// Mesh is what the agent knows of the mesh without a control plane.
type Mesh struct {
	Peers []Peer `yaml:"peers" json:"peers,omitempty"`
}

// Peer is a meshed destination: the addresses (CIDRs: a Service CIDR, a
// pod CIDR) and ports (none: every port) at which other veneer agents
// take mTLS, and the SPIFFE IDs the servers there may have (exact, or
// ending in /*; none: any ID of the trust domain).
type Peer struct {
	CIDRs      []string `yaml:"cidrs" json:"cidrs"`
	Ports      []uint16 `yaml:"ports" json:"ports,omitempty"`
	Principals []string `yaml:"principals" json:"principals,omitempty"`
}

// Stats configures the per-path profiler.
type Stats struct {
	// MaxPaths bounds the distinct paths tracked; later paths are counted
	// under "(other)". 0 means 1000.
	MaxPaths int `yaml:"maxPaths" json:"maxPaths"`
}

// Port is the settings of one captured port.
type Port struct {
	// Protocol is http, tcp (opaque, never parsed) or auto (the default):
	// auto reads the first bytes of either side to decide.
	Protocol string `yaml:"protocol" json:"protocol"`
	// SniffTimeout bounds auto's wait for the first bytes when neither side
	// speaks; the connection is then forwarded as TCP. 0 means 5s.
	SniffTimeout Duration `yaml:"sniffTimeout" json:"sniffTimeout"`
	// ProxyProtocol starts every connection to the app with a PROXY protocol
	// header carrying the client's address: v1, v2, or "" for none.
	ProxyProtocol string `yaml:"proxyProtocol" json:"proxyProtocol,omitempty"`
	// MTLS is the port's mutual TLS (inbound): off, permissive (mTLS from
	// meshed peers, plaintext from the rest) or strict (meshed peers only:
	// plaintext is reset). "" in a port's section is the default section's
	// (the one setting a port's section inherits), and there the agent's
	// --mtls.
	MTLS string `yaml:"mtls" json:"mtls,omitempty"`
	// TCP decorations, for every connection to the port.
	TCP TCP `yaml:"tcp" json:"tcp"`
	// HTTP is the decorations of the port's HTTP requests: each one's
	// block by its key. A block left out is as its module has it then.
	HTTP HTTP `yaml:"http" json:"http"`
	// Routes override HTTP for requests whose path starts with a prefix; the
	// longest matching prefix wins. A route's blocks replace the port's
	// whole; those it leaves out are the port's.
	Routes []Route `yaml:"routes" json:"routes,omitempty"`
}

// TCP is the L4 settings.
type TCP struct {
	// Authz allows or denies connections by client address: a block of
	// the TCP authorization's (the schema's TCPAuthz). Denied connections
	// are reset before the app is ever contacted.
	Authz *Block `yaml:"authz" json:"authz,omitempty"`
	// IdleTimeout closes a connection forwarded as TCP once no bytes have
	// moved either way for this long (Envoy's tcp_proxy idle_timeout). Left
	// out or 0, never: Istio's 1h default cuts idle database pools, a
	// standing complaint, and dead peers are found by TCP keepalive, on by
	// default on both of the agent's sockets.
	IdleTimeout Duration `yaml:"idleTimeout" json:"idleTimeout"`
}

// Route is a path prefix with HTTP blocks of its own.
type Route struct {
	Prefix string `yaml:"prefix" json:"prefix"`
	HTTP   HTTP   `yaml:",inline" json:"-"`
}

// MarshalJSON shows the route as the file has it: its prefix beside its
// blocks.
func (r Route) MarshalJSON() ([]byte, error) {
	m := map[string]any{"prefix": r.Prefix}
	for k, b := range r.HTTP {
		m[k] = b
	}
	return json.Marshal(m)
}

// Duration is a time.Duration written as "250ms", "5s".
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 250ms, 5s)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default is the configuration without a file.
func Default(s Schema) *Config {
	c := &Config{}
	if err := c.finish(s); err != nil {
		panic(err) // the zero config is always valid
	}
	return c
}

// Load reads and validates the file at path, its blocks by s.
func Load(path string, s Schema) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(b, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a config document, its blocks by s. Errors
// are one line.
func Parse(b []byte, s Schema) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // empty: the defaults
		return nil, oneLine(err)
	}
	if err := c.finish(s); err != nil {
		return nil, err
	}
	return c, nil
}

func oneLine(err error) error {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n")
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
	return errors.New(s)
}

// Port is the settings for port p: its entry, or the default.
func (c *Config) Port(p uint16) Port {
	if pc, ok := c.ports[p]; ok {
		return pc
	}
	return c.Default
}

// PortNumbers are the ports with an entry of their own.
func (c *Config) PortNumbers() []uint16 {
	out := make([]uint16, 0, len(c.ports))
	for p := range c.ports {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// finish validates c and fills its defaults.
func (c *Config) finish(s Schema) error {
	if err := c.Default.finish("default", s); err != nil {
		return err
	}
	if err := c.Outbound.finish("outbound", s); err != nil {
		return err
	}
	if c.Outbound.MTLS != "" {
		return fmt.Errorf("outbound.mtls: %q: mtls is a mode of inbound ports; the destinations to reach with mTLS are listed in mesh.peers", c.Outbound.MTLS)
	}
	if err := c.Mesh.check(); err != nil {
		return err
	}
	c.ports = map[uint16]Port{}
	for k, pc := range c.Ports {
		n, err := strconv.ParseUint(k, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("ports: %q is not a port (1-65535)", k)
		}
		if err := pc.finish("ports."+k, s); err != nil {
			return err
		}
		c.Ports[k] = pc
		c.ports[uint16(n)] = pc
	}
	if c.Stats.MaxPaths < 0 {
		return fmt.Errorf("stats.maxPaths: %d is negative", c.Stats.MaxPaths)
	}
	if c.Stats.MaxPaths == 0 {
		c.Stats.MaxPaths = 1000
	}
	return nil
}

func (p *Port) finish(path string, s Schema) error {
	switch p.MTLS {
	case "", "off", "permissive", "strict":
	default:
		return fmt.Errorf("%s.mtls: %q is not a mode (off, permissive or strict)", path, p.MTLS)
	}
	switch p.Protocol {
	case "":
		p.Protocol = "auto"
	case "auto", "http", "tcp":
	default:
		return fmt.Errorf("%s.protocol: %q is not a protocol (auto, http or tcp)", path, p.Protocol)
	}
	switch p.ProxyProtocol {
	case "", "v1", "v2":
	default:
		return fmt.Errorf("%s.proxyProtocol: %q is not a version (v1 or v2)", path, p.ProxyProtocol)
	}
	if p.SniffTimeout == 0 {
		p.SniffTimeout = Duration(5 * time.Second)
	}
	if b := p.TCP.Authz; b != nil {
		if err := b.decode(path+".tcp.authz", s.TCPAuthz); err != nil {
			return err
		}
	}
	if p.HTTP == nil {
		p.HTTP = HTTP{}
	}
	if err := p.HTTP.decode(path+".http", s); err != nil {
		return err
	}
	for _, k := range s.HTTP {
		if _, ok := p.HTTP[k.Key]; !ok && k.absent != nil {
			p.HTTP[k.Key] = &Block{value: k.absent}
		}
	}
	seen := map[string]bool{}
	for i, r := range p.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", path, i)
		if !strings.HasPrefix(r.Prefix, "/") {
			return fmt.Errorf("%s.prefix: %q is not a path prefix (it must start with /)", rp, r.Prefix)
		}
		if seen[r.Prefix] {
			return fmt.Errorf("%s.prefix: %q is listed twice", rp, r.Prefix)
		}
		seen[r.Prefix] = true
		if err := r.HTTP.decode(rp, s); err != nil {
			return err
		}
	}
	return nil
}

// check checks every peer's CIDRs and principals.
func (m *Mesh) check() error {
	for i, p := range m.Peers {
		path := fmt.Sprintf("mesh.peers[%d]", i)
		if len(p.CIDRs) == 0 {
			return fmt.Errorf("%s.cidrs: none: a peer is the addresses it is at (e.g. [10.96.0.0/12])", path)
		}
		for j, c := range p.CIDRs {
			if _, err := ParseCIDR(c); err != nil {
				return fmt.Errorf("%s.cidrs[%d]: %q is not a CIDR (e.g. 10.96.0.0/12, fd00::/8, 10.0.0.7)", path, j, c)
			}
		}
		for j, port := range p.Ports {
			if port == 0 {
				return fmt.Errorf("%s.ports[%d]: 0 is not a port (1-65535)", path, j)
			}
		}
		for j, pr := range p.Principals {
			if _, err := identity.ParsePattern(pr); err != nil {
				return fmt.Errorf("%s.principals[%d]: %v", path, j, err)
			}
		}
	}
	return nil
}

// ParseCIDR parses a CIDR, or a bare address as a /32 or /128.
func ParseCIDR(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// Merged is route r's blocks over the port's h: what r sets, else h's.
func (h HTTP) Merged(r HTTP) HTTP {
	m := maps.Clone(h)
	maps.Copy(m, r)
	return m
}
