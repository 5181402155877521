package decor

import (
	"strings"
	"testing"

	"github.com/veneermesh/veneer/pkg/agent/config"
)

// withModules runs f with ms as the only registered modules and order as
// Order.
func withModules(t *testing.T, order []string, ms ...Module) {
	t.Helper()
	saved, savedOrder := modules, Order
	t.Cleanup(func() { modules, Order = saved, savedOrder })
	modules, Order = map[string]Module{}, order
	for _, m := range ms {
		Register(m)
	}
}

func off(config.HTTP, Deps) (Decoration, error) { return nil, nil }

// The modules linked in and Order must agree, observers first: a module
// left out of Order, a name in Order that nothing registered, or an
// observer after a decoration that is not one, fails the build, naming it.
func TestOrderChecked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []string
		ms    []Module
		want  string
	}{
		{"agree", []string{"log", "a"}, []Module{{Name: "log", Observer: true, New: off}, {Name: "a", New: off}}, ""},
		{"not in Order", []string{"a"}, []Module{{Name: "a", New: off}, {Name: "b", New: off}}, `module "b" registered but not in Order`},
		{"not linked", []string{"a", "b"}, []Module{{Name: "a", New: off}}, `no module "b" registered`},
		{"observer late", []string{"a", "log"}, []Module{{Name: "log", Observer: true, New: off}, {Name: "a", New: off}}, `observer "log" comes after "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withModules(t, tc.order, tc.ms...)
			_, err := Build(config.HTTP{}, Deps{})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Build: %v; want %q", err, tc.want)
			}
		})
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	withModules(t, []string{"a"}, Module{Name: "a", New: off})
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	Register(Module{Name: "a", New: off})
}
