// Package pool keeps the state of decorations that must outlive one build
// of the chains: the token buckets of a rate limit and the requests in
// flight of a circuit breaker belong to what they limit (a port, or a route
// with a limit of its own), not to the config that described them, so a
// reload that left them unchanged must not refill the buckets or forget the
// requests under way. Caddy keeps such state in its UsagePool, keyed by what
// owns it; this is the same idea, with the config beside the value.
//
//	limiters := pool.New(ratelimit.New, nil)
//	l := limiters.Get("inbound port 8080", cfg) // the same *Limiter while cfg is unchanged
//	limiters.Retain(func(owner string) bool { ... }) // after a reload: forget the owners gone
package pool

import (
	"reflect"
	"sync"
)

// Pool holds one V per owner, made from a config C.
type Pool[C any, V any] struct {
	make func(C) V
	// update, when set, gives a held value a changed config in place and
	// reports whether it could (a breaker keeps its count of requests in
	// flight under a new maximum); otherwise a changed config makes a new V.
	update func(V, C) bool

	mu   sync.Mutex
	held map[string]*entry[C, V]
}

type entry[C any, V any] struct {
	cfg C
	v   V
}

// New makes a pool whose values come from make; update may be nil.
func New[C any, V any](make func(C) V, update func(V, C) bool) *Pool[C, V] {
	return &Pool[C, V]{make: make, update: update, held: map[string]*entry[C, V]{}}
}

// Get returns owner's value: the one held when it was made from an equal
// config (or update took the new one), else a new one, held from now on.
func (p *Pool[C, V]) Get(owner string, cfg C) V {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.held[owner]; ok {
		if reflect.DeepEqual(e.cfg, cfg) {
			return e.v
		}
		if p.update != nil && p.update(e.v, cfg) {
			e.cfg = cfg
			return e.v
		}
	}
	v := p.make(cfg)
	p.held[owner] = &entry[C, V]{cfg: cfg, v: v}
	return v
}

// Retain forgets every owner for which keep is false: those a new config
// no longer has. Chains still serving requests keep their values; only the
// pool lets go.
func (p *Pool[C, V]) Retain(keep func(owner string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.held {
		if !keep(k) {
			delete(p.held, k)
		}
	}
}

// Len is how many owners are held.
func (p *Pool[C, V]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}
