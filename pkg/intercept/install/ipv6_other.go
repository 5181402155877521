//go:build !linux

package install

import "errors"

func globalIPv6() (string, error) { return "", errors.New("capture needs Linux") }
