package sniff

import "testing"

// FuzzClassify: any bytes classify without panicking, and a decision, once
// made, does not change as more bytes arrive.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", Preface, "PRI * HTTP/1.1", "\x16\x03\x01", "POS", ""} {
		f.Add([]byte(s), []byte("more"))
	}
	f.Fuzz(func(t *testing.T, b, more []byte) {
		v := Classify(b)
		if v == NeedMore {
			return
		}
		if w := Classify(append(append([]byte{}, b...), more...)); w != v {
			t.Errorf("Classify(%q) = %v, but with %q after it %v", b, v, more, w)
		}
	})
}
