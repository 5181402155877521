package inject

import "testing"

// FuzzInject: any input injects or fails cleanly (nothing returned), never
// panics; what injects once injects to the same thing again, and uninjects.
func FuzzInject(f *testing.F) {
	f.Add([]byte(deployment))
	f.Add([]byte("kind: Pod\nmetadata: {name: p, annotations: {veneer.dev/sidecar: classic}}\nspec: {containers: [{name: a, ports: [{containerPort: 80}]}]}\n"))
	f.Add([]byte("kind: Service\n---\nkind: CronJob\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{name: j}]}}}}}\n"))
	f.Add([]byte("kind: [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Inject(b, Options{})
		if err != nil {
			if out != nil {
				t.Errorf("Inject(%q) failed but returned output", b)
			}
			return
		}
		again, err := Inject(out, Options{})
		if err != nil || string(again) != string(out) {
			t.Errorf("Inject is not idempotent on %q:\n%s\n---\n%s (%v)", b, out, again, err)
		}
		if _, err := Uninject(out); err != nil {
			t.Errorf("Uninject(Inject(%q)): %v", b, err)
		}
	})
}
