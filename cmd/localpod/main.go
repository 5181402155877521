// Command localpod makes, enters and removes a local pod: the network
// namespaces NAME-pod and NAME-client joined by a veth pair (see
// pkg/testbed/localpod). The demo and the benchmarks drive it; so can you:
//
//	localpod up demo
//	localpod exec demo-pod --uid 1337 -- veneer-agent
//	localpod exec demo-client -- curl http://10.213.0.2:8080/
//	localpod down demo
package main

import (
	"fmt"
	"os"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

func main() {
	if err := localpod.Main(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "localpod: %v\n", err)
		os.Exit(1)
	}
}
