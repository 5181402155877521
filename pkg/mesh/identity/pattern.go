package identity

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Pattern matches SPIFFE IDs: one exactly, or, ending in "/*", every ID
// under a path (spiffe://td/ns/shop/* matches every service account of
// namespace shop), or, as "*", any ID at all.
type Pattern struct {
	s      string
	prefix bool // s ends in "/": everything under it
}

// ParsePattern reads a pattern, saying what is wrong with a bad one.
func ParsePattern(s string) (Pattern, error) {
	if s == "*" {
		return Pattern{s: "spiffe://", prefix: true}, nil
	}
	if under, ok := strings.CutSuffix(s, "/*"); ok {
		// spiffe://td/* (the whole trust domain) or spiffe://td/ns/shop/*
		id, err := spiffeid.FromString(under)
		if err != nil || strings.Contains(under, "*") {
			return Pattern{}, fmt.Errorf("%q is not a SPIFFE ID pattern (e.g. spiffe://cluster.local/ns/shop/*): %v", s, err)
		}
		return Pattern{s: id.String() + "/", prefix: true}, nil
	}
	if strings.Contains(s, "*") {
		return Pattern{}, fmt.Errorf("%q is not a SPIFFE ID pattern: * may only end it, as a whole path segment (spiffe://cluster.local/ns/shop/*)", s)
	}
	id, err := spiffeid.FromString(s)
	if err != nil {
		return Pattern{}, fmt.Errorf("%q is not a SPIFFE ID (e.g. spiffe://cluster.local/ns/shop/sa/web): %v", s, err)
	}
	return Pattern{s: id.String()}, nil
}

// Matches says whether id is one the pattern names.
func (p Pattern) Matches(id spiffeid.ID) bool { return p.MatchesString(id.String()) }

// MatchesString is Matches for an ID already written out ("" for none,
// which nothing matches).
func (p Pattern) MatchesString(id string) bool {
	if p.prefix {
		return strings.HasPrefix(id, p.s)
	}
	return id == p.s && id != ""
}

func (p Pattern) String() string {
	if p.prefix {
		if p.s == "spiffe://" {
			return "*"
		}
		return p.s + "*"
	}
	return p.s
}
