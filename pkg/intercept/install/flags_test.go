package install

import (
	"io"
	"testing"
	"time"
)

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--inbound-ports", "8080,70000"}, `--inbound-ports: "70000" is not a port (1-65535)`},
		{[]string{"--inbound-ports", "8080,15006"}, `--inbound-ports: 15006 is one of the agent's own ports (15006,15000), which are never captured`},
		{[]string{"--exclude-inbound-ports", "abc"}, `--exclude-inbound-ports: "abc" is not a port (1-65535)`},
		{[]string{"--exclude-inbound-ports", "*"}, `--exclude-inbound-ports: "*" would capture nothing; to capture nothing, set --inbound-ports to ""`},
		{[]string{"--proxy-port", "0"}, `--proxy-port: "0" is not a port (1-65535)`},
		{[]string{"--admin-port", "15006"}, `--admin-port: 15006 is also --proxy-port; the agent needs two ports`},
		{[]string{"--proxy-uid", "0"}, `--proxy-uid: "0" is not a user or group ID (1-4294967295; the agent must not run as root)`},
		{[]string{"--proxy-gid", "x"}, `--proxy-gid: "x" is not a user or group ID (1-4294967295; the agent must not run as root)`},
		{[]string{"--backend", "ebpf"}, `--backend: "ebpf" is not a backend (auto, legacy or nft)`},
		{[]string{"--ipv6", "yes"}, `--ipv6: "yes" is not a choice (auto, on or off)`},
		{[]string{"--cleanup", "--validate"}, `--cleanup and --validate: there is nothing to validate after a clean-up; pick one`},
		{[]string{"--validate-timeout", "0s"}, `--validate-timeout: 0s is not a positive duration`},
		{[]string{"extra"}, `unexpected argument "extra" (flags only; see --help)`},
		{[]string{"--mode", "ebpf"}, `--mode: "ebpf" is not a mode (redirect or tproxy)`},
		{[]string{"--outbound", "--outbound-port", "15006"}, `--outbound-port: 15006 is already one of the agent's ports (15006,15000)`},
		{[]string{"--exclude-outbound-cidrs", "10.0.0.0/8,nope"}, `--exclude-outbound-cidrs: "nope" is not a CIDR (e.g. 10.96.0.0/12, fd00::/8)`},
		{[]string{"--exclude-outbound-ports", "99999"}, `--exclude-outbound-ports: "99999" is not a port (1-65535)`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := ParseFlags(tc.args, io.Discard)
			if err == nil || err.Error() != tc.want {
				t.Errorf("ParseFlags(%q) = %v; want %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseFlagsDefaultsAndEnv(t *testing.T) {
	t.Setenv("VENEER_INBOUND_PORTS", "*")
	t.Setenv("VENEER_EXCLUDE_INBOUND_PORTS", "22")
	o, err := ParseFlags([]string{"--proxy-port", "16000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.Capture
	if !c.InboundPorts.All || c.ExcludeInboundPorts.String() != "22" || c.ProxyPort != 16000 ||
		len(c.AgentPorts) != 1 || c.AgentPorts[0] != 15000 {
		t.Errorf("capture options = %+v; want * minus 22, proxy 16000, admin 15000", c)
	}
	if c.ProxyUID != 1337 || c.ProxyGID != 1337 || c.Mode != "redirect" || c.Outbound || c.OutboundPort != 15001 || o.Backend != "auto" || o.IPv6 != "auto" || o.ValidateTimeout != 5*time.Second {
		t.Errorf("options = %+v; want the documented defaults", o)
	}
}

func TestCapturedPort(t *testing.T) {
	o, err := ParseFlags([]string{"--inbound-ports", "*", "--exclude-inbound-ports", "8080,8081"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := capturedPort(o.Capture); !ok || p != 8082 {
		t.Errorf("capturedPort(* minus 8080,8081) = %d, %v; want 8082", p, ok)
	}
	o, _ = ParseFlags([]string{"--inbound-ports", "9090,3306", "--exclude-inbound-ports", "3306"}, io.Discard)
	if p, ok := capturedPort(o.Capture); !ok || p != 9090 {
		t.Errorf("capturedPort(3306,9090 minus 3306) = %d, %v; want 9090", p, ok)
	}
}
