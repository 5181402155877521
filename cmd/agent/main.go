// Command veneer-agent is the sidecar: it forwards the connections that
// veneer-init redirected to it, and decorates them. See pkg/agent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent"
	"github.com/veneermesh/veneer/pkg/agent/logsink"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "prestop" { // the container's preStop hook
		if err := agent.PreStop(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintf(os.Stderr, "veneer-agent prestop: %v\n", err)
			os.Exit(1)
		}
		return
	}
	opts, err := agent.ParseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		if opts.Workers > 0 {
			runtime.GOMAXPROCS(opts.Workers)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		reload := make(chan struct{})
		go func() {
			for range hup {
				reload <- struct{}{}
			}
		}()
		// The event loops log: the log must never wait for stderr.
		out := logsink.New(os.Stderr)
		log := zerolog.New(out).With().Timestamp().Str("component", "veneer-agent").Logger()
		err = agent.Run(ctx, opts, reload, log)
		out.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "veneer-agent: %v\n", err)
		os.Exit(1)
	}
}
