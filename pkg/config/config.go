// Package config is the agent's configuration file: one YAML document,
// decoded strictly (an unknown field, a bad duration, a percentage over 100,
// a bad CIDR or port is an error naming it), with defaults filled in.
//
//	cfg, err := config.Load("/etc/veneer/config.yaml")
//	port := cfg.Port(8080) // the port's settings, or the defaults
//
// Without a file, Default() is used: protocol auto on every captured port,
// access log and metrics on, every other decoration off. deploy/config.yaml
// shows every field.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
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

	ports map[uint16]Port // Ports, parsed
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
	// TCP decorations, for every connection to the port.
	TCP TCP `yaml:"tcp" json:"tcp"`
	// HTTP decorations, for the port's HTTP requests.
	HTTP HTTP `yaml:"http" json:"http"`
	// Routes override HTTP for requests whose path starts with a prefix; the
	// longest matching prefix wins. A route's fields that are set replace
	// the port's; those left out are the port's.
	Routes []Route `yaml:"routes" json:"routes,omitempty"`
}

// TCP is the L4 decorations.
type TCP struct {
	// Authz allows or denies connections by client address. Denied
	// connections are reset before the app is ever contacted.
	Authz *Authz `yaml:"authz" json:"authz,omitempty"`
	// IdleTimeout closes a connection forwarded as TCP once no bytes have
	// moved either way for this long (Envoy's tcp_proxy idle_timeout). Left
	// out or 0, never: Istio's 1h default cuts idle database pools, a
	// standing complaint, and dead peers are found by TCP keepalive, on by
	// default on both of the agent's sockets.
	IdleTimeout Duration `yaml:"idleTimeout" json:"idleTimeout"`
}

// Route is a path prefix with its own HTTP settings.
type Route struct {
	Prefix string `yaml:"prefix" json:"prefix"`
	HTTP   `yaml:",inline" json:",inline"`
}

// HTTP is the L7 decorations. A nil section is off (or inherited, in a route).
type HTTP struct {
	AccessLog  *bool       `yaml:"accessLog" json:"accessLog,omitempty"` // one JSON line per request; nil means on
	Metrics    *bool       `yaml:"metrics" json:"metrics,omitempty"`     // Prometheus metrics and /stats; nil means on
	RequestID  *bool       `yaml:"requestId" json:"requestId,omitempty"` // add X-Request-Id when absent
	Tracing    *bool       `yaml:"tracing" json:"tracing,omitempty"`     // propagate or start W3C traceparent
	Forwarded  *bool       `yaml:"forwarded" json:"forwarded,omitempty"` // X-Forwarded-For/-Proto and Forwarded
	Timeouts   *Timeouts   `yaml:"timeouts" json:"timeouts,omitempty"`
	Retries    *Retries    `yaml:"retries" json:"retries,omitempty"`
	Fault      *Fault      `yaml:"fault" json:"fault,omitempty"`
	Headers    *Headers    `yaml:"headers" json:"headers,omitempty"`
	RateLimit  *RateLimit  `yaml:"rateLimit" json:"rateLimit,omitempty"`
	Authz      *Authz      `yaml:"authz" json:"authz,omitempty"`
	ErrorPages *ErrorPages `yaml:"errorPages" json:"errorPages,omitempty"`
	Circuit    *Circuit    `yaml:"circuitBreaker" json:"circuitBreaker,omitempty"`
}

// Timeouts bounds the app.
type Timeouts struct {
	Connect Duration `yaml:"connect" json:"connect"` // to connect to the app; 0 means 5s
	Request Duration `yaml:"request" json:"request"` // for the app's response headers; 0 means none
	Idle    Duration `yaml:"idle" json:"idle"`       // a client keep-alive connection may idle; 0 means 5m
}

// Retries re-sends a request the app failed before answering.
type Retries struct {
	Attempts int `yaml:"attempts" json:"attempts"` // retries after the first try, 1-10
	// On lists when to retry: connect-failure, reset (the app closed the
	// connection before any response byte), 503. Empty means the first two.
	On []string `yaml:"on" json:"on,omitempty"`
	// Backoff is the first wait, doubled per retry, with jitter. 0 means 25ms.
	Backoff Duration `yaml:"backoff" json:"backoff"`
	// Budget is the share of requests in flight that may be retries at
	// once, in percent; 0 means 20. It stops retries from piling onto an
	// app that is down.
	Budget float64 `yaml:"budget" json:"budget"`
	// Methods that may be retried. Empty means the idempotent ones without a
	// body: GET, HEAD, OPTIONS, TRACE, PUT and DELETE. Never POST unless listed.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
}

// Fault injects delays and aborts, as Istio's VirtualService fault does.
type Fault struct {
	Delay *Delay `yaml:"delay" json:"delay,omitempty"`
	Abort *Abort `yaml:"abort" json:"abort,omitempty"`
}

// Delay holds a share of requests before they go on.
type Delay struct {
	Fixed   Duration `yaml:"fixed" json:"fixed"`
	Percent float64  `yaml:"percent" json:"percent"`
}

// Abort answers a share of requests with a status instead of the app.
type Abort struct {
	Status  int     `yaml:"status" json:"status"`
	Percent float64 `yaml:"percent" json:"percent"`
}

// Headers changes request and response headers.
type Headers struct {
	Request  HeaderOps `yaml:"request" json:"request"`
	Response HeaderOps `yaml:"response" json:"response"`
}

// HeaderOps is what to do to one side's headers: remove, then set, then add.
type HeaderOps struct {
	Set    map[string]string `yaml:"set" json:"set,omitempty"`
	Add    map[string]string `yaml:"add" json:"add,omitempty"`
	Remove []string          `yaml:"remove" json:"remove,omitempty"`
}

// RateLimit is a local token bucket, in total and per client IP.
type RateLimit struct {
	RequestsPerSecond float64 `yaml:"requestsPerSecond" json:"requestsPerSecond"` // 0: no total limit
	Burst             int     `yaml:"burst" json:"burst"`                         // 0 means requestsPerSecond, at least 1
	PerClient         *Bucket `yaml:"perClient" json:"perClient,omitempty"`
}

// Bucket is one token bucket.
type Bucket struct {
	RequestsPerSecond float64 `yaml:"requestsPerSecond" json:"requestsPerSecond"`
	Burst             int     `yaml:"burst" json:"burst"`
}

// Authz allows and denies by method, path prefix and client CIDR. The first
// matching rule decides; with none matching, Default does (allow unless set).
type Authz struct {
	Default string `yaml:"default" json:"default"` // allow (the default) or deny
	Rules   []Rule `yaml:"rules" json:"rules"`
}

// Rule matches a request when every list it sets matches; an empty list
// matches anything.
type Rule struct {
	Action  string   `yaml:"action" json:"action"` // allow or deny
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	Paths   []string `yaml:"paths" json:"paths,omitempty"`     // path prefixes
	Clients []string `yaml:"clients" json:"clients,omitempty"` // CIDRs
}

// ErrorPages replaces the app's responses by status with a file's content,
// as the seed article's sequel does with a custom 404 page.
type ErrorPages struct {
	// Pages maps a status ("404") or a class ("5xx") to a file. An exact
	// status wins over its class.
	Pages map[string]string `yaml:"pages" json:"pages"`
}

// Circuit limits the requests in flight to the app.
type Circuit struct {
	MaxRequests int `yaml:"maxRequests" json:"maxRequests"` // over it: 503 at once, flag UO
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
func Default() *Config {
	c := &Config{}
	if err := c.finish(); err != nil {
		panic(err) // the zero config is always valid
	}
	return c
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a config document. Errors are one line.
func Parse(b []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // empty: the defaults
		return nil, oneLine(err)
	}
	if err := c.finish(); err != nil {
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
func (c *Config) finish() error {
	if err := c.Default.finish("default"); err != nil {
		return err
	}
	if err := c.Outbound.finish("outbound"); err != nil {
		return err
	}
	c.ports = map[uint16]Port{}
	for k, pc := range c.Ports {
		n, err := strconv.ParseUint(k, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("ports: %q is not a port (1-65535)", k)
		}
		if err := pc.finish("ports." + k); err != nil {
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

func (p *Port) finish(path string) error {
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
	if p.TCP.Authz != nil {
		if err := p.TCP.Authz.check(path+".tcp.authz", false); err != nil {
			return err
		}
	}
	on := true
	if p.HTTP.AccessLog == nil {
		p.HTTP.AccessLog = &on
	}
	if p.HTTP.Metrics == nil {
		p.HTTP.Metrics = &on
	}
	if err := p.HTTP.check(path + ".http"); err != nil {
		return err
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
		if err := r.HTTP.check(rp); err != nil {
			return err
		}
	}
	return nil
}

// Merged is route r's settings over the port's h: what r sets, else h's.
func (h HTTP) Merged(r HTTP) HTTP {
	m := h
	if r.AccessLog != nil {
		m.AccessLog = r.AccessLog
	}
	if r.Metrics != nil {
		m.Metrics = r.Metrics
	}
	if r.RequestID != nil {
		m.RequestID = r.RequestID
	}
	if r.Tracing != nil {
		m.Tracing = r.Tracing
	}
	if r.Forwarded != nil {
		m.Forwarded = r.Forwarded
	}
	if r.Timeouts != nil {
		m.Timeouts = r.Timeouts
	}
	if r.Retries != nil {
		m.Retries = r.Retries
	}
	if r.Fault != nil {
		m.Fault = r.Fault
	}
	if r.Headers != nil {
		m.Headers = r.Headers
	}
	if r.RateLimit != nil {
		m.RateLimit = r.RateLimit
	}
	if r.Authz != nil {
		m.Authz = r.Authz
	}
	if r.ErrorPages != nil {
		m.ErrorPages = r.ErrorPages
	}
	if r.Circuit != nil {
		m.Circuit = r.Circuit
	}
	return m
}

// On reports whether an optional switch is set and true.
func On(b *bool) bool { return b != nil && *b }

func percent(path string, v float64) error {
	if v < 0 || v > 100 {
		return fmt.Errorf("%s: %v is not a percentage (0-100)", path, v)
	}
	return nil
}

var retryOn = []string{"connect-failure", "reset", "503"}

func (h *HTTP) check(path string) error {
	if t := h.Timeouts; t != nil {
		if t.Connect == 0 {
			t.Connect = Duration(5 * time.Second)
		}
		if t.Idle == 0 {
			t.Idle = Duration(5 * time.Minute)
		}
	}
	if r := h.Retries; r != nil {
		if r.Attempts < 1 || r.Attempts > 10 {
			return fmt.Errorf("%s.retries.attempts: %d is not between 1 and 10", path, r.Attempts)
		}
		for _, on := range r.On {
			if !slices.Contains(retryOn, on) {
				return fmt.Errorf("%s.retries.on: %q is not a retry condition (%s)", path, on, strings.Join(retryOn, ", "))
			}
		}
		if len(r.On) == 0 {
			r.On = []string{"connect-failure", "reset"}
		}
		if r.Backoff == 0 {
			r.Backoff = Duration(25 * time.Millisecond)
		}
		if err := percent(path+".retries.budget", r.Budget); err != nil {
			return err
		}
		if r.Budget == 0 {
			r.Budget = 20
		}
		for i, m := range r.Methods {
			if !validMethod(m) {
				return fmt.Errorf("%s.retries.methods[%d]: %q is not an HTTP method", path, i, m)
			}
		}
		if len(r.Methods) == 0 {
			r.Methods = []string{"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}
		}
	}
	if f := h.Fault; f != nil {
		if d := f.Delay; d != nil {
			if err := percent(path+".fault.delay.percent", d.Percent); err != nil {
				return err
			}
			if d.Fixed == 0 {
				return fmt.Errorf("%s.fault.delay.fixed: a delay needs a duration (e.g. 100ms)", path)
			}
		}
		if a := f.Abort; a != nil {
			if err := percent(path+".fault.abort.percent", a.Percent); err != nil {
				return err
			}
			if a.Status < 200 || a.Status > 599 {
				return fmt.Errorf("%s.fault.abort.status: %d is not an HTTP status (200-599)", path, a.Status)
			}
		}
	}
	if hd := h.Headers; hd != nil {
		for side, ops := range map[string]HeaderOps{"request": hd.Request, "response": hd.Response} {
			for _, names := range [][]string{keys(ops.Set), keys(ops.Add), ops.Remove} {
				for _, n := range names {
					if !validToken(n) {
						return fmt.Errorf("%s.headers.%s: %q is not a header name", path, side, n)
					}
				}
			}
		}
	}
	if rl := h.RateLimit; rl != nil {
		if rl.RequestsPerSecond < 0 || rl.Burst < 0 {
			return fmt.Errorf("%s.rateLimit: requestsPerSecond and burst must not be negative", path)
		}
		if pc := rl.PerClient; pc != nil && (pc.RequestsPerSecond <= 0 || pc.Burst < 0) {
			return fmt.Errorf("%s.rateLimit.perClient.requestsPerSecond: %v must be positive", path, pc.RequestsPerSecond)
		}
		if rl.RequestsPerSecond == 0 && rl.PerClient == nil {
			return fmt.Errorf("%s.rateLimit: set requestsPerSecond, perClient or both", path)
		}
	}
	if a := h.Authz; a != nil {
		if err := a.check(path+".authz", true); err != nil {
			return err
		}
	}
	if e := h.ErrorPages; e != nil {
		for k, file := range e.Pages {
			if !validStatusKey(k) {
				return fmt.Errorf("%s.errorPages.pages: %q is not a status (404) or a class (5xx)", path, k)
			}
			if file == "" {
				return fmt.Errorf("%s.errorPages.pages.%s: no file named", path, k)
			}
		}
	}
	if c := h.Circuit; c != nil && c.MaxRequests < 1 {
		return fmt.Errorf("%s.circuitBreaker.maxRequests: %d must be at least 1", path, c.MaxRequests)
	}
	return nil
}

func (a *Authz) check(path string, http bool) error {
	switch a.Default {
	case "":
		a.Default = "allow"
	case "allow", "deny":
	default:
		return fmt.Errorf("%s.default: %q is not allow or deny", path, a.Default)
	}
	for i, r := range a.Rules {
		rp := fmt.Sprintf("%s.rules[%d]", path, i)
		if r.Action != "allow" && r.Action != "deny" {
			return fmt.Errorf("%s.action: %q is not allow or deny", rp, r.Action)
		}
		if !http && (len(r.Methods) > 0 || len(r.Paths) > 0) {
			return fmt.Errorf("%s: a TCP rule matches clients only, not methods or paths", rp)
		}
		for j, m := range r.Methods {
			if !validMethod(m) {
				return fmt.Errorf("%s.methods[%d]: %q is not an HTTP method", rp, j, m)
			}
		}
		for j, p := range r.Paths {
			if !strings.HasPrefix(p, "/") {
				return fmt.Errorf("%s.paths[%d]: %q is not a path prefix (it must start with /)", rp, j, p)
			}
		}
		for j, c := range r.Clients {
			if _, err := ParseCIDR(c); err != nil {
				return fmt.Errorf("%s.clients[%d]: %q is not a CIDR (e.g. 10.0.0.0/8, fd00::/8, 192.0.2.7)", rp, j, c)
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

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func validStatusKey(k string) bool {
	if len(k) == 3 && k[0] >= '1' && k[0] <= '5' && k[1:] == "xx" {
		return true
	}
	n, err := strconv.Atoi(k)
	return err == nil && n >= 100 && n <= 599
}

func validMethod(m string) bool { return validToken(m) && strings.ToUpper(m) == m }

// validToken reports whether s is an RFC 9110 token, as header names and
// methods are.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
