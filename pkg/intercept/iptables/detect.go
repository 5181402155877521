package iptables

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Detection is what Detect saw of each backend, for the log.
type Detection struct {
	Mode   Mode   // the chosen backend
	Reason string // why it was chosen
	Rules  map[Mode]int
}

// Detect picks the backend this network namespace already uses, as
// kube-proxy's iptables-wrapper and istio-iptables do:
//  1. the one that holds chains named with ownPrefix (a re-run keeps its backend);
//  2. else the one that holds more rules (another tool got there first);
//  3. else the default of the installed `iptables` command (`iptables --version`).
//
// A backend whose save command fails (not installed, kernel without its
// tables) is not picked; when neither works, the error says why for both.
func Detect(ownPrefix string) (Detection, error) {
	d := Detection{Rules: map[Mode]int{}}
	var errs []error
	var owners []Mode
	var working []Mode
	for _, m := range []Mode{Legacy, NFT} {
		out, err := save(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		working = append(working, m)
		for _, l := range strings.Split(out, "\n") {
			switch {
			case strings.HasPrefix(l, "-A "):
				d.Rules[m]++
			case strings.HasPrefix(l, ":"+ownPrefix):
				if len(owners) == 0 || owners[len(owners)-1] != m {
					owners = append(owners, m)
				}
			}
		}
	}
	switch {
	case len(working) == 0:
		for _, err := range errs {
			if errors.Is(err, ErrPermission) {
				return d, err
			}
		}
		return d, fmt.Errorf("--backend auto: neither iptables backend works (%v; %v)", errs[0], errs[1])
	case len(working) == 1:
		d.Mode, d.Reason = working[0], "the only backend that works"
	case len(owners) == 1:
		d.Mode, d.Reason = owners[0], "it holds veneer's chains already"
	case d.Rules[Legacy] != d.Rules[NFT]:
		d.Mode, d.Reason = NFT, "it holds more rules"
		if d.Rules[Legacy] > d.Rules[NFT] {
			d.Mode = Legacy
		}
	default:
		d.Mode, d.Reason = defaultMode(), "no rules in either; the default of the iptables command"
	}
	return d, nil
}

func save(m Mode) (string, error) {
	cmd := m.Command(IPv4) + "-save"
	path, err := exec.LookPath(cmd)
	if err != nil {
		return "", fmt.Errorf("%s not found in $PATH", cmd)
	}
	var stdout, stderr bytes.Buffer
	c := exec.Command(path)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t := &Tables{Mode: m, Family: IPv4}
		return "", t.explain(fmt.Errorf("%s: %w: %s", cmd, err, strings.TrimSpace(stderr.String())))
	}
	return stdout.String(), nil
}

// defaultMode is the backend the plain `iptables` command uses; nft when it
// cannot tell, as every current distribution does.
func defaultMode() Mode {
	out, err := exec.Command("iptables", "--version").Output()
	if err == nil && strings.Contains(string(out), "legacy") {
		return Legacy
	}
	return NFT
}
