// Command veneerctl injects veneer into Kubernetes YAML, and takes it out
// again. See pkg/kube/inject.
//
//	veneerctl inject -f deployment.yaml | kubectl apply -f -
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/veneermesh/veneer/pkg/kube/inject"
)

func main() {
	err := inject.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "veneerctl: %v\n", err)
		os.Exit(1)
	}
}
