package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// HTTP is a section's (or a route's) HTTP decorations: each one's block,
// by its key ("rateLimit"), as its module decoded it.
type HTTP map[string]*Block

// Block is one module's settings in a section: the YAML the file has, and
// the module's decoded, checked value with its defaults filled, which is
// what the module reads (Get) and what GET /config shows.
type Block struct {
	node  yaml.Node
	value any
}

func (b *Block) UnmarshalYAML(n *yaml.Node) error {
	b.node = *n
	return nil
}

func (b *Block) MarshalJSON() ([]byte, error) { return json.Marshal(b.value) }

// A Kind is one module's block: its key, how it is decoded, and what a
// port's section that leaves it out has.
type Kind struct {
	Key    string
	decode func(n *yaml.Node) (any, error)
	absent any // nil: a section without the block has none
}

// Provisioner is a module's config: Provision checks it and fills its
// defaults, once it is decoded. Its errors name the field they are about
// from the block down (Errorf), or none for the block as a whole.
type Provisioner interface{ Provision() error }

// BlockOf is the kind of block key: a mapping decoded strictly into a C
// (an unknown field is an error with its line), then provisioned.
func BlockOf[C any, P interface {
	*C
	Provisioner
}](key string) Kind {
	return Kind{Key: key, decode: func(n *yaml.Node) (any, error) {
		var c C
		if err := Strict(n, &c); err != nil {
			return nil, err
		}
		if err := P(&c).Provision(); err != nil {
			return nil, err
		}
		return c, nil
	}}
}

// KindOf is the kind of block key that decode decodes (a module's own,
// for a block BlockOf and Switch do not fit); a port's section that leaves
// it out has absent (nil: none). decode's errors are as Provision's.
func KindOf(key string, decode func(n *yaml.Node) (any, error), absent any) Kind {
	return Kind{Key: key, decode: decode, absent: absent}
}

// Switch is the kind of an on/off block ("forwarded: true"): on when a
// port's section leaves it out if on is.
func Switch(key string, on bool) Kind {
	k := Kind{Key: key, decode: func(n *yaml.Node) (any, error) {
		var v bool
		if err := Strict(n, &v); err != nil {
			return nil, err
		}
		return v, nil
	}}
	if on {
		k.absent = true
	}
	return k
}

// Get is block key of h as its module decoded it, and whether h has it.
func Get[C any](h HTTP, key string) (C, bool) {
	b, ok := h[key]
	if !ok {
		var zero C
		return zero, false
	}
	return b.value.(C), true // the kind of key decodes a C: a mismatch is a bug
}

// On says whether switch key of h is on.
func On(h HTTP, key string) bool {
	on, _ := Get[bool](h, key)
	return on
}

// Schema is who the frame hands its blocks to.
type Schema struct {
	HTTP     []Kind // the kinds of an http section's blocks, in the order to list them
	TCPAuthz Kind   // a tcp section's authz
}

// decode has every block of h decoded by its kind in s. A key with no
// value ("fault:" with its settings commented out) is as if left out.
func (h HTTP) decode(path string, s Schema) error {
	maps.DeleteFunc(h, func(_ string, b *Block) bool { return b == nil })
	for _, key := range slices.Sorted(maps.Keys(h)) {
		i := slices.IndexFunc(s.HTTP, func(k Kind) bool { return k.Key == key })
		if i < 0 {
			var known []string
			for _, k := range s.HTTP {
				known = append(known, k.Key)
			}
			return fmt.Errorf("%s: line %d: %q is not a setting here (%s)", path, h[key].node.Line, key, strings.Join(known, ", "))
		}
		if err := h[key].decode(path+"."+key, s.HTTP[i]); err != nil {
			return err
		}
	}
	return nil
}

func (b *Block) decode(path string, k Kind) error {
	v, err := k.decode(&b.node)
	if err != nil {
		return prefixed(path, err)
	}
	b.value = v
	return nil
}

// FieldError is a module's error about one field of its block.
type FieldError struct {
	Field string // from the block down: "perClient.requestsPerSecond"; empty for the block
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Errorf is a module's error about field of its block ("" for the block
// as a whole), as Provision returns it: the frame names the block's path
// before it.
func Errorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

func prefixed(path string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		return fmt.Errorf("%s.%s: %w", path, fe.Field, fe.Err)
	}
	if fe != nil {
		err = fe.Err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// Strict decodes n into v as a Decoder with KnownFields does a document:
// a field v has no place for is an error with its line (yaml.Node.Decode
// alone ignores it). Errors are one line.
func Strict(n *yaml.Node, v any) error {
	if err := known(n, reflect.TypeOf(v)); err != nil {
		return err
	}
	if err := n.Decode(v); err != nil {
		return oneLine(err)
	}
	return nil
}

var unmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

// known checks that every key of n's mappings is a field of t, down
// through t's structs, slices and maps.
func known(n *yaml.Node, t reflect.Type) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshaler) {
		return nil // decodes itself
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // Decode says what is wrong
		}
		fields := map[string]reflect.Type{}
		yamlFields(t, fields)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("line %d: field %s not found in type %s", k.Line, k.Value, t)
			}
			if err := known(n.Content[i+1], ft); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				if err := known(c, t.Elem()); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				if err := known(n.Content[i], t.Elem()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// yamlFields adds t's fields by their YAML names, inlined ones included.
func yamlFields(t reflect.Type, into map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if slices.Contains(strings.Split(opts, ","), "inline") && f.Type.Kind() == reflect.Struct {
			yamlFields(f.Type, into)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default
		}
		into[name] = f.Type
	}
}

// Percent checks that field is a percentage.
func Percent(field string, v float64) error {
	if v < 0 || v > 100 {
		return Errorf(field, "%v is not a percentage (0-100)", v)
	}
	return nil
}

// ValueOf is b's value as its module decoded it.
func ValueOf[C any](b *Block) C { return b.value.(C) }
