// Command veneer-init is the init container: it installs the iptables rules
// that send a pod's inbound TCP to veneer-agent. See pkg/intercept/install.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/intercept/install"
)

func main() {
	opts, err := install.ParseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		log := zerolog.New(os.Stderr).With().Timestamp().Str("component", "veneer-init").Logger()
		opts.Out = os.Stdout
		err = install.Run(opts, log)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "veneer-init: %v\n", err)
		os.Exit(1)
	}
}
