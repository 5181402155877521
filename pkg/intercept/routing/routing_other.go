//go:build !linux

package routing

import (
	"errors"

	"github.com/veneermesh/veneer/pkg/intercept/capture"
)

var errLinux = errors.New("policy routing needs Linux")

func Ensure(r *capture.Routing, v6 bool) (bool, error) { return false, errLinux }
func Remove(r *capture.Routing, v6 bool) (bool, error) { return false, errLinux }
