package decor

import "testing"

type cfg struct {
	Rate int
	Sub  *int
}

type val struct{ rate int }

// deps owns every block by owner.
func deps(s *Shared, owner string) Deps {
	return Deps{Shared: s, Owner: func(string) string { return owner }}
}

// An owner keeps its value while its config is equal (by value, not by
// pointer); a changed config, or another owner, makes a new one.
func TestOwned(t *testing.T) {
	s := NewShared()
	made := 0
	mk := func(c cfg) *val { made++; return &val{c.Rate} }
	one, two := 1, 1
	a := Owned(deps(s, "in port 80"), "k", cfg{Rate: 5, Sub: &one}, mk, nil)(80)
	tests := []struct {
		name  string
		owner string
		cfg   cfg
		same  bool
	}{
		{"same owner, equal config (other pointer, same value)", "in port 80", cfg{Rate: 5, Sub: &two}, true},
		{"same owner, changed config", "in port 80", cfg{Rate: 6, Sub: &one}, false},
		{"other owner, equal config", "in port 81", cfg{Rate: 5, Sub: &one}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Owned(deps(s, tt.owner), "k", tt.cfg, mk, nil)(80) == a; got != tt.same {
				t.Errorf("same value = %v; want %v", got, tt.same)
			}
			a = Owned(deps(s, "in port 80"), "k", cfg{Rate: 5, Sub: &one}, mk, nil)(80) // back to the first config
		})
	}
	if made != 4 {
		t.Errorf("made %d values; want 4 (first, changed, other owner, first again)", made)
	}
}

func TestOwnedUpdateInPlace(t *testing.T) {
	s := NewShared()
	mk := func(c cfg) *val { return &val{c.Rate} }
	up := func(v *val, c cfg) bool { v.rate = c.Rate; return true }
	a := Owned(deps(s, "x"), "k", cfg{Rate: 1}, mk, up)(0)
	if b := Owned(deps(s, "x"), "k", cfg{Rate: 2}, mk, up)(0); b != a || b.rate != 2 {
		t.Errorf("after a change: same value %v, rate %d; want the same value with rate 2", b == a, b.rate)
	}
}

// A section of many ports has a value per port; a build keeps what it
// still has (a section's ports with it), and forgets, in its scope only,
// the owners it dropped.
func TestSweep(t *testing.T) {
	s := NewShared()
	mk := func(c cfg) *val { return &val{c.Rate} }
	s.Begin("in ")
	each := Owned(deps(s, "in default"+EachPort), "k", cfg{}, mk, nil)
	a80, a81 := each(80), each(81)
	Owned(deps(s, "in port 9090"), "k", cfg{}, mk, nil)
	out := Owned(deps(s, "out"+EachPort), "k", cfg{}, mk, nil)(443)
	s.Sweep("in ")
	if s.Len() != 4 {
		t.Fatalf("held %d; want 4 (two ports of the default, 9090, outbound's 443)", s.Len())
	}
	if a80 == a81 {
		t.Error("two ports of a section of many share a value")
	}
	s.Begin("in ") // a reload without port 9090
	each = Owned(deps(s, "in default"+EachPort), "k", cfg{}, mk, nil)
	s.Sweep("in ")
	if s.Len() != 3 || each(80) != a80 || each(81) != a81 {
		t.Errorf("held %d; want 3, the default's ports with the values they had", s.Len())
	}
	if Owned(deps(s, "out"+EachPort), "k", cfg{}, mk, nil)(443) != out {
		t.Error("another scope's build forgot outbound's value")
	}
}

// Once makes the agent's value the first time only; Provide and Lookup
// hand over what the agent made.
func TestAgentValues(t *testing.T) {
	s := NewShared()
	made := 0
	for range 2 {
		v, err := Once(s, "m", func() (*val, error) { made++; return &val{}, nil })
		if err != nil || v == nil {
			t.Fatal(v, err)
		}
	}
	if made != 1 {
		t.Errorf("made %d; want 1", made)
	}
	if _, ok := Lookup[*val](s, "tap"); ok {
		t.Error("a value never provided was found")
	}
	Provide(s, "tap", &val{rate: 7})
	if v, ok := Lookup[*val](s, "tap"); !ok || v.rate != 7 {
		t.Errorf("Lookup after Provide: %v, %v", v, ok)
	}
}
