package identity

import (
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/veneermesh/veneer/pkg/mesh/identity/testca"
)

// der is the DER of the PEM blocks in b, concatenated, as the Workload
// API sends certificates.
func der(b []byte) []byte {
	var out []byte
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out
		}
		out = append(out, blk.Bytes...)
	}
}

// response is an X509SVIDResponse with one SVID, as SPIRE's agent sends it.
func response(id string, chain, key, bundle []byte) []byte {
	var svid []byte
	svid = protowire.AppendTag(svid, 1, protowire.BytesType)
	svid = protowire.AppendString(svid, id)
	for i, v := range [][]byte{chain, key, bundle} {
		svid = protowire.AppendTag(svid, protowire.Number(i+2), protowire.BytesType)
		svid = protowire.AppendBytes(svid, v)
	}
	svid = protowire.AppendTag(svid, 5, protowire.BytesType)
	svid = protowire.AppendString(svid, "hint")
	var r []byte
	r = protowire.AppendTag(r, 1, protowire.BytesType)
	r = protowire.AppendBytes(r, svid)
	r = protowire.AppendTag(r, 2, protowire.BytesType) // a CRL, not read
	r = protowire.AppendBytes(r, []byte("crl"))
	return r
}

func TestParseX509SVIDResponse(t *testing.T) {
	ca := testca.New(t, "veneer.test")
	certPEM, keyPEM := ca.SVID(t, "spiffe://veneer.test/ns/shop/sa/web", time.Hour)
	chain, key, bundle := der(certPEM), der(keyPEM), der(ca.BundlePEM())
	id, err := parseX509SVIDResponse(response("spiffe://veneer.test/ns/shop/sa/web", chain, key, bundle))
	if err != nil {
		t.Fatal(err)
	}
	if id.ID.String() != "spiffe://veneer.test/ns/shop/sa/web" || len(id.Bundle.X509Authorities()) != 1 || id.Cert.PrivateKey == nil {
		t.Errorf("identity %+v", id)
	}
	for name, tc := range map[string]struct {
		msg  []byte
		want string
	}{
		"no SVID":           {nil, "no SVID"},
		"another ID":        {response("spiffe://veneer.test/other", chain, key, bundle), "its message says spiffe://veneer.test/other"},
		"a key of another":  {response("spiffe://veneer.test/ns/shop/sa/web", chain, der(func() []byte { _, k := ca.SVID(t, "spiffe://veneer.test/x", time.Hour); return k }()), bundle), "SVID"},
		"no bundle":         {response("spiffe://veneer.test/ns/shop/sa/web", chain, key, nil), "bundle"},
		"truncated":         {response("spiffe://veneer.test/ns/shop/sa/web", chain, key, bundle)[:40], "malformed"},
		"not a certificate": {response("spiffe://veneer.test/ns/shop/sa/web", []byte("x"), key, bundle), "SVID"},
	} {
		if _, err := parseX509SVIDResponse(tc.msg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}

func TestSocketPath(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///run/spire/agent.sock": "/run/spire/agent.sock",
		"/run/spire/agent.sock":        "/run/spire/agent.sock",
	} {
		if got, err := socketPath(in); err != nil || got != want {
			t.Errorf("socketPath(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "tcp://127.0.0.1:8081", "unix://host/x", "unix:", "http://x/y"} {
		if _, err := socketPath(bad); err == nil {
			t.Errorf("socketPath(%q): no error", bad)
		}
	}
}
