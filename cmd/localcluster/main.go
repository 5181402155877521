// Command localcluster runs a real single-node Kubernetes cluster on this
// machine, from upstream binaries, in a network namespace, a folder and a
// cgroup of its own (see pkg/testbed/localcluster). make k8s-test drives it; so can
// you, as root:
//
//	localcluster up /tmp/vk8s bin          # prints how to reach it
//	localcluster kubectl /tmp/vk8s bin -- get pods -A
//	localcluster import /tmp/vk8s images.tar
//	localcluster down /tmp/vk8s
//
// Pod sandboxes run this program too, as `localcluster pause`.
package main

import (
	"fmt"
	"os"

	"github.com/veneermesh/veneer/pkg/testbed/localcluster"
)

func main() {
	if err := localcluster.Main(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
		os.Exit(1)
	}
}
