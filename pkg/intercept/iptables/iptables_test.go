package iptables

import "testing"

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"legacy": Legacy, "nft": NFT} {
		if m, auto, err := ParseMode(in); m != want || auto || err != nil {
			t.Errorf("ParseMode(%q) = %q, %v, %v; want %q", in, m, auto, err, want)
		}
	}
	if _, auto, err := ParseMode("auto"); !auto || err != nil {
		t.Errorf("ParseMode(auto) = auto %v, %v; want auto", auto, err)
	}
	if _, _, err := ParseMode("xtables"); err == nil || err.Error() != `--backend: "xtables" is not a backend (auto, legacy or nft)` {
		t.Errorf("ParseMode(xtables) error = %v", err)
	}
}

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		m    Mode
		f    Family
		want string
	}{{Legacy, IPv4, "iptables-legacy"}, {NFT, IPv6, "ip6tables-nft"}} {
		if got := tc.m.Command(tc.f); got != tc.want {
			t.Errorf("%s.Command(%s) = %q; want %q", tc.m, tc.f, got, tc.want)
		}
	}
}
