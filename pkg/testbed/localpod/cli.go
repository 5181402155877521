//go:build linux

package localpod

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
)

const usage = `usage:
  localpod up NAME                            create NAME-pod and NAME-client
  localpod exec NAMESPACE [--uid ID] -- CMD...  run CMD inside a namespace (as ID/ID)
  localpod forward NAMESPACE LOCAL TARGET     serve LOCAL (host:port here) by connecting to TARGET from NAMESPACE
  localpod down NAME                          remove both namespaces
addresses: client %s and %s, pod %s and %s`

// Main is the localpod command.
func Main(args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf(usage, ClientIP, ClientIP6, PodIP, PodIP6)
	}
	switch args[0] {
	case "up":
		p, err := Create(args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pod %s: namespace %s at %s and %s; clients in %s at %s and %s\n",
			p.Name, p.Pod.Name, PodIP, PodIP6, p.Client.Name, ClientIP, ClientIP6)
		return nil
	case "forward":
		if len(args) != 4 {
			return fmt.Errorf(usage, ClientIP, ClientIP6, PodIP, PodIP6)
		}
		ns, err := openNS(args[1])
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", args[2])
		if err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		fmt.Fprintf(stdout, "forwarding %s to %s in %s\n", ln.Addr(), args[3], args[1])
		return ns.Forward(ln, args[3])
	case "down":
		return Delete(args[1])
	case "exec":
		fs := flag.NewFlagSet("localpod exec", flag.ContinueOnError)
		fs.SetOutput(stderr)
		uid := fs.Uint("uid", 0, "run as this user and group ID (0: as the caller)")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return errors.New("exec: no command after --")
		}
		ns, err := openNS(args[1])
		if err != nil {
			return err
		}
		return ns.Exec(fs.Args(), uint32(*uid))
	}
	return fmt.Errorf(usage, ClientIP, ClientIP6, PodIP, PodIP6)
}
