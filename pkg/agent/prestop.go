package agent

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/veneermesh/veneer/pkg/envflag"
)

// PreStop is `veneer-agent prestop`, the agent container's preStop hook
// (veneerctl inject adds it): it asks the running agent, on --admin-local,
// to let its clients go (POST /prestop). The kubelet runs a native
// sidecar's preStop hook when the pod starts terminating, before the app
// has stopped, so kept connections move to other pods while the app still
// answers; the agent's own SIGTERM comes only after the app has exited.
func PreStop(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("veneer-agent prestop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin-local", "127.0.0.1:15009", "the running agent's --admin-local")
	if err := envflag.Parse(fs, "VENEER_", args); err != nil {
		return err
	}
	if *addr == "" {
		return fmt.Errorf("--admin-local is empty: the agent has no endpoint to ask")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post("http://"+*addr+"/prestop", "text/plain", nil)
	if err != nil {
		return fmt.Errorf("asking the agent to let its clients go: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("asking the agent to let its clients go: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
	return err
}
