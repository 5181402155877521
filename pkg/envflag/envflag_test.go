package envflag

import (
	"flag"
	"io"
	"testing"
)

func TestParse(t *testing.T) {
	t.Setenv("VENEER_INBOUND_PORTS", "9090")
	t.Setenv("VENEER_PROXY_PORT", "16000")
	t.Setenv("VENEER_DRY_RUN", "true")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ports := fs.String("inbound-ports", "8080", "")
	proxy := fs.String("proxy-port", "15006", "")
	dry := fs.Bool("dry-run", false, "")
	uid := fs.String("proxy-uid", "1337", "")
	if err := Parse(fs, "VENEER_", []string{"--proxy-port=17000"}); err != nil {
		t.Fatal(err)
	}
	if *ports != "9090" {
		t.Errorf("inbound-ports = %q; want 9090 from the environment", *ports)
	}
	if *proxy != "17000" {
		t.Errorf("proxy-port = %q; want the command line's 17000 over the environment's", *proxy)
	}
	if !*dry {
		t.Error("dry-run = false; want true from the environment")
	}
	if *uid != "1337" {
		t.Errorf("proxy-uid = %q; want the default 1337", *uid)
	}
}

func TestParseErrors(t *testing.T) {
	t.Setenv("VENEER_DRY_RUN", "maybe")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Bool("dry-run", false, "")
	err := Parse(fs, "VENEER_", nil)
	want := `$VENEER_DRY_RUN: "maybe" is not a valid value for --dry-run: parse error`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v; want %q", err, want)
	}
	if err := Parse(fs, "VENEER_", []string{"stray"}); err == nil {
		t.Error("Parse with a stray argument = nil error; want an error naming it")
	}
}
