package agent

import (
	"io"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

func TestParseFlags(t *testing.T) {
	t.Setenv("VENEER_DRAIN_TIMEOUT", "9s")
	o, err := ParseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != ":15006" || o.Admin != ":15000" || o.DrainTimeout != 9*time.Second || o.ConnectTimeout != 5*time.Second || o.Workers != 1 ||
		o.TraceSampling != 0.01 || o.ServiceName != "veneer-agent" {
		t.Errorf("options = %+v; want the defaults with the drain timeout from the environment", o)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "15006"}, `--listen: "15006" is not a host:port address (e.g. :15006)`},
		{[]string{"--admin", "nowhere"}, `--admin: "nowhere" is not a host:port address (e.g. :15006)`},
		{[]string{"--drain-timeout", "-1s"}, `--drain-timeout: -1s is negative`},
		{[]string{"--connect-timeout", "0s"}, `--connect-timeout: 0s is not a positive duration`},
		{[]string{"--workers", "-2"}, `--workers: -2 is negative (0: as many as the container may use)`},
		{[]string{"--log-level", "loud"}, `--log-level: "loud" is not a level (debug, info, warn or error)`},
		{[]string{"--trace-sampling", "1.5"}, `--trace-sampling: 1.5 is not a share between 0 and 1 (0.01 is 1%)`},
		{[]string{"--mtls", "on"}, `--mtls: "on" is not a mode (off, permissive or strict)`},
		{[]string{"--mtls", "strict"}, `--mtls: strict needs an SVID: set --spiffe-socket ($SPIFFE_ENDPOINT_SOCKET) or --svid-dir`},
		{[]string{"--spiffe-socket", "/a.sock", "--svid-dir", "/b"}, `--spiffe-socket (/a.sock) and --svid-dir (/b): one identity source, not both`},
	} {
		if _, err := ParseFlags(tc.args, io.Discard); err == nil || err.Error() != tc.want {
			t.Errorf("ParseFlags(%q) = %v; want %q", tc.args, err, tc.want)
		}
	}
}

// TestMeshNeedsAnIdentity: a config that asks for mTLS is refused, naming
// the field, when the agent has no SVID to handshake with.
func TestMeshNeedsAnIdentity(t *testing.T) {
	for _, tc := range []struct{ cfg, mtls, want string }{
		{"ports: {\"8080\": {mtls: strict}}", "off", "ports.8080.mtls: strict needs an SVID: set --spiffe-socket ($SPIFFE_ENDPOINT_SOCKET) or --svid-dir"},
		{"mesh: {peers: [{cidrs: [10.0.0.0/8]}]}", "off", "mesh.peers needs an SVID: set --spiffe-socket ($SPIFFE_ENDPOINT_SOCKET) or --svid-dir"},
		{"default: {protocol: http}", "permissive", "default.mtls: permissive needs an SVID: set --spiffe-socket ($SPIFFE_ENDPOINT_SOCKET) or --svid-dir"},
		{"ports: {\"8080\": {mtls: off}}", "off", ""},
		{"default: {mtls: strict}\nports: {\"8080\": {protocol: http}}", "off", "default.mtls: strict needs an SVID: set --spiffe-socket ($SPIFFE_ENDPOINT_SOCKET) or --svid-dir"},
	} {
		c, err := config.Parse([]byte(tc.cfg), decor.Schema())
		if err != nil {
			t.Fatal(err)
		}
		err = checkMesh(c, Options{MTLS: tc.mtls}, nil)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("%s with --mtls %s: %q, want %q", tc.cfg, tc.mtls, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%s with --mtls %s: no error, want %q", tc.cfg, tc.mtls, tc.want)
		}
	}
}

// TestMTLSModeInherited: a port's section without a mode takes the default
// section's, then --mtls; its own wins.
func TestMTLSModeInherited(t *testing.T) {
	c, err := config.Parse([]byte("default: {mtls: strict}\nports: {\"8080\": {protocol: http}, \"9090\": {mtls: permissive}}"), decor.Schema())
	if err != nil {
		t.Fatal(err)
	}
	ps := policies(c, "inbound", Options{MTLS: "off"})
	if ps.Default.MTLS != "strict" || ps.Ports[8080].MTLS != "strict" || ps.Ports[9090].MTLS != "permissive" {
		t.Errorf("modes: default %s, 8080 %s, 9090 %s; want strict, strict (inherited), permissive", ps.Default.MTLS, ps.Ports[8080].MTLS, ps.Ports[9090].MTLS)
	}
	if out := policies(c, "outbound", Options{MTLS: "strict"}); out.Default.MTLS != "off" {
		t.Errorf("outbound mode %s; outbound, mTLS is by peer", out.Default.MTLS)
	}
	c, _ = config.Parse([]byte("ports: {\"8080\": {protocol: http}}"), decor.Schema())
	if ps := policies(c, "inbound", Options{MTLS: "permissive"}); ps.Ports[8080].MTLS != "permissive" {
		t.Errorf("8080 %s; want --mtls's permissive", ps.Ports[8080].MTLS)
	}
}
