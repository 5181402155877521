package pool

import "testing"

type cfg struct {
	Rate int
	Sub  *int
}

type val struct{ rate int }

func TestGet(t *testing.T) {
	made := 0
	p := New(func(c cfg) *val { made++; return &val{c.Rate} }, nil)
	one, two := 1, 1
	a := p.Get("port 80", cfg{Rate: 5, Sub: &one})
	tests := []struct {
		name  string
		owner string
		cfg   cfg
		same  bool
	}{
		{"same owner, equal config (other pointer, same value)", "port 80", cfg{Rate: 5, Sub: &two}, true},
		{"same owner, changed config", "port 80", cfg{Rate: 6, Sub: &one}, false},
		{"other owner, equal config", "port 81", cfg{Rate: 5, Sub: &one}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Get(tt.owner, tt.cfg) == a; got != tt.same {
				t.Errorf("same value = %v; want %v", got, tt.same)
			}
			a = p.Get("port 80", cfg{Rate: 5, Sub: &one}) // back to the first config
		})
	}
	if made != 4 {
		t.Errorf("made %d values; want 4 (first, changed, other owner, first again)", made)
	}
}

func TestUpdateInPlace(t *testing.T) {
	p := New(func(c cfg) *val { return &val{c.Rate} }, func(v *val, c cfg) bool { v.rate = c.Rate; return true })
	a := p.Get("x", cfg{Rate: 1})
	if b := p.Get("x", cfg{Rate: 2}); b != a || b.rate != 2 {
		t.Errorf("after a change: same value %v, rate %d; want the same value with rate 2", b == a, b.rate)
	}
}

func TestRetain(t *testing.T) {
	p := New(func(c cfg) *val { return &val{c.Rate} }, nil)
	a := p.Get("keep", cfg{})
	p.Get("drop", cfg{})
	p.Retain(func(owner string) bool { return owner == "keep" })
	if p.Len() != 1 {
		t.Errorf("held %d; want 1", p.Len())
	}
	if p.Get("keep", cfg{}) != a {
		t.Error("a retained owner got a new value")
	}
}
