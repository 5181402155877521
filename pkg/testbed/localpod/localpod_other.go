//go:build !linux

package localpod

import (
	"errors"
	"io"
)

// Main is the localpod command, which has nothing to make here: a local
// pod is Linux network namespaces joined by a veth pair.
func Main(args []string, stdout, stderr io.Writer) error {
	return errors.New("a local pod needs Linux (network namespaces, veth)")
}
