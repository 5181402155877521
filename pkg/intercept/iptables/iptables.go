// Package iptables opens one address family of one iptables backend (legacy or
// nft) for reading, through github.com/coreos/go-iptables, and for atomic
// writes, through the matching iptables-restore.
//
//	mode, err := iptables.Detect(capture.ChainPrefix) // or iptables.Legacy / iptables.NFT
//	t, err := iptables.Open(mode, iptables.IPv4)
//	lines, err := t.List("nat", "PREROUTING")
//	err = t.Restore(input)
package iptables

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	goipt "github.com/coreos/go-iptables/iptables"
)

// Mode is an iptables backend. The two write to different kernel subsystems:
// rules written through one are invisible to the other, so a pod must use the
// one its node uses (the "iptables-legacy vs nft" mismatch).
type Mode string

const (
	Legacy Mode = "legacy"
	NFT    Mode = "nft"
)

// ParseMode parses --backend; "auto" is left to Detect.
func ParseMode(s string) (mode Mode, auto bool, err error) {
	switch s {
	case "auto", "":
		return "", true, nil
	case string(Legacy), string(NFT):
		return Mode(s), false, nil
	}
	return "", false, fmt.Errorf("--backend: %q is not a backend (auto, legacy or nft)", s)
}

// Family is an address family: iptables or ip6tables.
type Family int

const (
	IPv4 Family = iota
	IPv6
)

func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Command is the iptables command of this mode and family, e.g. "ip6tables-nft".
func (m Mode) Command(f Family) string {
	if f == IPv6 {
		return "ip6tables-" + string(m)
	}
	return "iptables-" + string(m)
}

// Tables is one family of one backend.
type Tables struct {
	Mode    Mode
	Family  Family
	ipt     *goipt.IPTables
	restore string // path of the matching iptables-restore
}

// Open finds the binaries of mode and family. It fails with an error naming
// the missing binary when they are not installed.
func Open(mode Mode, f Family) (*Tables, error) {
	cmd := mode.Command(f)
	path, err := exec.LookPath(cmd)
	if err != nil {
		return nil, fmt.Errorf("--backend %s: %s not found in $PATH (install iptables 1.8 or later)", mode, cmd)
	}
	restore, err := exec.LookPath(cmd + "-restore")
	if err != nil {
		return nil, fmt.Errorf("--backend %s: %s-restore not found in $PATH (install iptables 1.8 or later)", mode, cmd)
	}
	proto := goipt.ProtocolIPv4
	if f == IPv6 {
		proto = goipt.ProtocolIPv6
	}
	// Wait up to 10s for the xtables lock rather than failing when another
	// process (kube-proxy, a CNI plugin) holds it.
	ipt, err := goipt.New(goipt.IPFamily(proto), goipt.Path(path), goipt.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("--backend %s: running %s: %w", mode, cmd, err)
	}
	return &Tables{Mode: mode, Family: f, ipt: ipt, restore: restore}, nil
}

// Name is the command behind t, for logs and errors.
func (t *Tables) Name() string { return t.Mode.Command(t.Family) }

// ListChains lists the chains of table.
func (t *Tables) ListChains(table string) ([]string, error) {
	chains, err := t.ipt.ListChains(table)
	return chains, t.explain(err)
}

// List lists the rules of chain as `iptables -S` prints them.
func (t *Tables) List(table, chain string) ([]string, error) {
	lines, err := t.ipt.List(table, chain)
	return lines, t.explain(err)
}

// Restore applies input with iptables-restore --noflush: one transaction
// that either commits whole or leaves the table as it was.
func (t *Tables) Restore(input string) error {
	cmd := exec.Command(t.restore, "--noflush", "--wait=10")
	cmd.Stdin = strings.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		return t.explain(fmt.Errorf("%s-restore: %w: %s", t.Name(), err, msg))
	}
	return nil
}

// ErrPermission is wrapped by errors that a missing NET_ADMIN capability caused.
var ErrPermission = errors.New("permission denied: veneer-init needs the NET_ADMIN and NET_RAW capabilities (and root)")

// explain turns iptables' own words for a missing capability into one error
// that says what to grant.
func (t *Tables) explain(err error) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	if strings.Contains(s, "Permission denied") || strings.Contains(s, "you must be root") ||
		strings.Contains(s, "Operation not permitted") {
		return fmt.Errorf("%s: %w", t.Name(), ErrPermission)
	}
	return err
}
