//go:build !linux

// Package localcluster runs a real single-node Kubernetes cluster on one
// Linux machine; elsewhere it has nothing to run on.
package localcluster

import (
	"errors"
	"io"
)

// Main is the localcluster command, which needs Linux (network namespaces,
// cgroups, containerd).
func Main(args []string, stdout, stderr io.Writer) error {
	return errors.New("a local cluster needs Linux (network namespaces, cgroups, containerd)")
}
