package decor

import (
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Shared is the one pool of what decorations keep beyond one build of the
// chains, handed to them in Deps, as Caddy's UsagePool is to its modules:
//
//   - the agent's values, one of each (Once, Provide, Lookup): the HTTP
//     metrics registered once, the profiler, the admin page's tap, the OTLP
//     exporter;
//   - values kept by owner (Owned): the token buckets of a rate limit and
//     the requests in flight of a circuit breaker belong to what they limit
//     (a port, or a route with a limit of its own), not to the config that
//     described them, so a reload that left them unchanged must not refill
//     the buckets or forget the requests under way.
//
// One Shared serves every HTTP server of the agent (inbound, outbound):
// owners are named by the server's own scope, and a build forgets only its
// scope's owners that it no longer has (Begin, Sweep).
type Shared struct {
	mu    sync.Mutex
	agent map[string]any
	owned map[string]*owned // by module name + "\x00" + owner
	live  map[string]bool   // the owners the builds under way touched
}

type owned struct {
	cfg any
	v   any
}

// NewShared is an empty pool.
func NewShared() *Shared {
	return &Shared{agent: map[string]any{}, owned: map[string]*owned{}, live: map[string]bool{}}
}

// Once is the agent's value of name: made by make on first use, the same
// one after. An error is not kept: the next use tries again.
func Once[V any](s *Shared, name string, make func() (V, error)) (V, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.agent[name]; ok {
		return v.(V), nil
	}
	v, err := make()
	if err == nil {
		s.agent[name] = v
	}
	return v, err
}

// Provide makes v the agent's value of name (the admin page's tap, which
// the agent makes).
func Provide(s *Shared, name string, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agent[name] = v
}

// Lookup is the agent's value of name, if it has one.
func Lookup[V any](s *Shared, name string) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.agent[name].(V)
	return v, ok
}

// EachPort, at the end of an owner's name, stands for every port of a
// section that serves many (the default, outbound): each port the
// requests come to has a value of its own, named with its number there.
const EachPort = " port *"

// Owned gives the value of block key (its module's) for d's owner of it,
// made from cfg: the
// value held while cfg is unchanged (or update, when set, took the new
// one in place), else a new one, held from now on. When the owner is a
// section of many ports (EachPort), each port's is found on its first
// request and then read without a lock.
func Owned[C any, V any](d Deps, key string, cfg C, make func(C) V, update func(V, C) bool) func(port uint16) V {
	s, owner, name := d.Shared, d.Owner(key), key
	s.mu.Lock()
	s.live[name+"\x00"+owner] = true
	s.mu.Unlock()
	section, route, many := strings.Cut(owner, EachPort)
	if !many {
		v := get(s, name, owner, cfg, make, update)
		return func(uint16) V { return v }
	}
	var ports sync.Map // uint16 -> V
	return func(port uint16) V {
		if v, ok := ports.Load(port); ok {
			return v.(V)
		}
		v, _ := ports.LoadOrStore(port, get(s, name, section+" port "+strconv.Itoa(int(port))+route, cfg, make, update))
		return v.(V)
	}
}

func get[C any, V any](s *Shared, name, owner string, cfg C, make func(C) V, update func(V, C) bool) V {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := name + "\x00" + owner
	if e, ok := s.owned[k]; ok {
		if reflect.DeepEqual(e.cfg, cfg) {
			return e.v.(V)
		}
		if update != nil && update(e.v.(V), cfg) {
			e.cfg = cfg
			return e.v.(V)
		}
	}
	v := make(cfg)
	s.owned[k] = &owned{cfg: cfg, v: v}
	return v
}

// Begin starts a build of the chains of scope (the owners' names start
// with it): Sweep, after it, forgets the owners of scope it did not touch.
func (s *Shared) Begin(scope string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.live {
		if ownerOf(k, scope) {
			delete(s.live, k)
		}
	}
}

// Sweep forgets the owners of scope that the build since Begin no longer
// has: those of a port or route the new config dropped. Chains still
// serving requests keep their values; only the pool lets go.
func (s *Shared) Sweep(scope string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.owned {
		if ownerOf(k, scope) && !s.live[k] && !s.live[starred(k)] {
			delete(s.owned, k)
		}
	}
}

// Len is how many owned values are held.
func (s *Shared) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.owned)
}

func ownerOf(k, scope string) bool {
	_, owner, _ := strings.Cut(k, "\x00")
	return strings.HasPrefix(owner, scope)
}

// starred is the key a port's own value in a section of many ports comes
// from ("inbound default port 8080 route /a" from "inbound default port *
// route /a"), or k itself.
func starred(k string) string {
	i := strings.Index(k, " port ")
	if i < 0 {
		return k
	}
	rest := k[i+len(" port "):]
	n := strings.IndexByte(rest, ' ')
	if n < 0 {
		n = len(rest)
	}
	if _, err := strconv.Atoi(rest[:n]); err != nil {
		return k
	}
	return k[:i] + EachPort + rest[n:]
}
