package install

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/veneermesh/veneer/pkg/envflag"
	"github.com/veneermesh/veneer/pkg/intercept/capture"
	"github.com/veneermesh/veneer/pkg/intercept/iptables"
)

// EnvPrefix prefixes the environment variable of each flag: --inbound-ports
// is also $VENEER_INBOUND_PORTS.
const EnvPrefix = "VENEER_"

// ParseFlags reads veneer-init's flags and their environment variables into
// Options. Every bad value is an error that names the flag and what would be
// valid. Usage goes to out.
func ParseFlags(args []string, out io.Writer) (Options, error) {
	fs := flag.NewFlagSet("veneer-init", flag.ContinueOnError)
	fs.SetOutput(out)
	var (
		inbound   = fs.String("inbound-ports", "8080", `inbound TCP ports to capture, comma-separated, or "*" for all`)
		exclude   = fs.String("exclude-inbound-ports", "", `inbound TCP ports never to capture (useful with "*")`)
		proxyPort = fs.String("proxy-port", "15006", "the agent's inbound port, where captured connections go")
		adminPort = fs.String("admin-port", "15000", "the agent's admin port, never captured")
		uid       = fs.String("proxy-uid", "1337", "user ID the agent runs as")
		gid       = fs.String("proxy-gid", "1337", "group ID the agent runs as")
		outPort   = fs.String("outbound-port", "15001", "the agent's outbound port, where captured outgoing connections go")
		exOutPort = fs.String("exclude-outbound-ports", "", "outgoing TCP ports never to capture")
		exCIDRs   = fs.String("exclude-outbound-cidrs", "", "destination CIDRs never to capture outbound, comma-separated")
		o         = Options{Out: out}
	)
	fs.StringVar(&o.Capture.Mode, "mode", "redirect", "inbound capture: redirect (nat REDIRECT; works everywhere) or tproxy (the app sees the real client; the agent needs NET_ADMIN)")
	fs.BoolVar(&o.Capture.Outbound, "outbound", false, "also capture the app's outgoing TCP (except the agent's own, loopback and DNS)")
	fs.StringVar(&o.Backend, "backend", "auto", "iptables backend: auto, legacy or nft")
	fs.StringVar(&o.IPv6, "ipv6", "auto", "also capture IPv6: auto (when the namespace has a global IPv6 address), on or off")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the iptables-restore input and change nothing")
	fs.BoolVar(&o.Cleanup, "cleanup", false, "remove everything veneer installed, and nothing else")
	fs.BoolVar(&o.Validate, "validate", false, "after applying, prove that a captured port reaches a running agent")
	fs.DurationVar(&o.ValidateTimeout, "validate-timeout", 5*time.Second, "how long --validate waits for the agent")
	fs.Usage = func() {
		fmt.Fprintf(out, "veneer-init installs the iptables rules that send a pod's inbound TCP to veneer-agent.\n"+
			"Every flag can also be set as $%sNAME, e.g. --inbound-ports as $%sINBOUND_PORTS.\n\n", EnvPrefix, EnvPrefix)
		fs.PrintDefaults()
	}
	if err := envflag.Parse(fs, EnvPrefix, args); err != nil {
		return Options{}, err
	}

	var err error
	c := &o.Capture
	if c.InboundPorts, err = capture.ParsePortSet("--inbound-ports", *inbound); err != nil {
		return Options{}, err
	}
	if c.ExcludeInboundPorts, err = capture.ParsePortSet("--exclude-inbound-ports", *exclude); err != nil {
		return Options{}, err
	}
	if c.ProxyPort, err = capture.ParsePort("--proxy-port", *proxyPort); err != nil {
		return Options{}, err
	}
	admin, err := capture.ParsePort("--admin-port", *adminPort)
	if err != nil {
		return Options{}, err
	}
	if admin == c.ProxyPort {
		return Options{}, fmt.Errorf("--admin-port: %d is also --proxy-port; the agent needs two ports", admin)
	}
	c.AgentPorts = []uint16{admin}
	if c.ProxyUID, err = parseID("--proxy-uid", *uid); err != nil {
		return Options{}, err
	}
	if c.ProxyGID, err = parseID("--proxy-gid", *gid); err != nil {
		return Options{}, err
	}
	if c.OutboundPort, err = capture.ParsePort("--outbound-port", *outPort); err != nil {
		return Options{}, err
	}
	if c.ExcludeOutboundPorts, err = capture.ParsePortSet("--exclude-outbound-ports", *exOutPort); err != nil {
		return Options{}, err
	}
	for _, f := range strings.Split(*exCIDRs, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return Options{}, fmt.Errorf("--exclude-outbound-cidrs: %q is not a CIDR (e.g. 10.96.0.0/12, fd00::/8)", f)
		}
		c.ExcludeOutboundCIDRs = append(c.ExcludeOutboundCIDRs, p.Masked())
	}
	if err := c.Validate(); err != nil {
		return Options{}, err
	}
	if _, _, err := iptables.ParseMode(o.Backend); err != nil {
		return Options{}, err
	}
	switch o.IPv6 {
	case "auto", "on", "off":
	default:
		return Options{}, fmt.Errorf("--ipv6: %q is not a choice (auto, on or off)", o.IPv6)
	}
	if o.Cleanup && o.Validate {
		return Options{}, fmt.Errorf("--cleanup and --validate: there is nothing to validate after a clean-up; pick one")
	}
	if o.ValidateTimeout <= 0 {
		return Options{}, fmt.Errorf("--validate-timeout: %s is not a positive duration", o.ValidateTimeout)
	}
	return o, nil
}

func parseID(flag, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%s: %q is not a user or group ID (1-4294967295; the agent must not run as root)", flag, s)
	}
	return uint32(n), nil
}
