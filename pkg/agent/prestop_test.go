package agent

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/veneermesh/veneer/pkg/agent/admin"
)

func TestPreStop(t *testing.T) {
	asked := 0
	srv := httptest.NewServer(admin.Local(func() { t.Error("prestop drained the agent") }, func() { asked++ }, func(string) error { return nil }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var out bytes.Buffer
	if err := PreStop([]string{"--admin-local", addr}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if asked != 1 || !strings.Contains(out.String(), "serving until SIGTERM") {
		t.Errorf("asked %d times, printed %q; want once, with the agent's answer", asked, out.String())
	}

	// The address from the environment, as the container's hook has it.
	t.Setenv("VENEER_ADMIN_LOCAL", addr)
	if err := PreStop(nil, &out, &out); err != nil || asked != 2 {
		t.Errorf("with $VENEER_ADMIN_LOCAL: %v, asked %d times; want 2", err, asked)
	}

	// Nothing there, or something else there: an error that says what failed.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	if err := PreStop([]string{"--admin-local", dead}, &out, &out); err == nil || !strings.Contains(err.Error(), "let its clients go") {
		t.Errorf("no agent: got %v; want an error saying what was asked", err)
	}
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	if err := PreStop([]string{"--admin-local", strings.TrimPrefix(other.URL, "http://")}, &out, &out); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("not an agent: got %v; want the 404 named", err)
	}
	if err := PreStop([]string{"--admin-local", ""}, &out, &out); err == nil {
		t.Error("an empty --admin-local: got no error")
	}
}
