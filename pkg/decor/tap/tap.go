// Package tap is the live tap of the admin page (Linkerd's `viz tap`): the
// requests the agent finishes, as they happen, to whoever watches. It is
// always in the chain and costs one atomic load per request while nobody
// watches. A watcher gets the exchanges its filter matches, at most
// PerSecond a second (the rest are counted as skipped, not queued), with
// the values of the headers that carry credentials (Redacted) replaced
// before anything is copied.
//
//	t := tap.New()
//	mux.Handle("GET /tap", t) // Server-Sent Events: ?path=/api&status=5xx&flag=UF
package tap

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/sse"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

const (
	// PerSecond bounds the events a watcher gets each second: a page
	// shows a sample of a busy pod's requests, not all of them.
	PerSecond = 50
	// MaxWatchers bounds the watchers at once; more are refused with 503.
	MaxWatchers = 8
	// queued is how many events wait for a slow watcher before more are
	// skipped.
	queued = 64
)

// Redacted are the headers whose values never leave the agent through the
// tap: the client's and the app's credentials.
var Redacted = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"}

// RedactedValue replaces their values.
const RedactedValue = "[redacted]"

// Tap hands finished exchanges to its watchers.
type Tap struct {
	watchers atomic.Pointer[[]*watcher] // nil while nobody watches
	mu       sync.Mutex                 // serialises changes to watchers
}

// New is a tap nobody watches yet.
func New() *Tap { return &Tap{} }

// Filter is what a watcher wants to see; each field left empty matches all.
type Filter struct {
	Path   string // a prefix of the path
	Status string // a code ("404") or a class ("5xx")
	Flag   string // a response flag ("UF"), or "-" for requests without one
	flag   exchange.Flag
	// Status as matched: a code, or a class (2 for "2xx") with code 0.
	code, class int
}

// ParseFilter reads a filter from a tap URL's query: path, status, flag.
func ParseFilter(q map[string][]string) (Filter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := Filter{Path: get("path"), Status: strings.ToLower(get("status")), Flag: get("flag")}
	if s := f.Status; s != "" {
		if len(s) != 3 || s[0] < '1' || s[0] > '5' || !(s[1:] == "xx" || isDigits(s[1:])) {
			return Filter{}, fmt.Errorf("status: %q is not a status code (404) or class (5xx)", s)
		}
		if s[1:] == "xx" {
			f.class = int(s[0] - '0')
		} else {
			f.code, _ = strconv.Atoi(s)
		}
	}
	if f.Flag != "" && f.Flag != "-" {
		fl, ok := exchange.ParseFlag(f.Flag)
		if !ok {
			return Filter{}, fmt.Errorf("flag: %q is not a response flag (%s, or - for none)", f.Flag, strings.Join(exchange.FlagNames(), ", "))
		}
		f.flag = fl
	}
	return f, nil
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (f *Filter) match(x *exchange.Exchange) bool {
	if f.Path != "" && !strings.HasPrefix(x.Path, f.Path) {
		return false
	}
	if f.code != 0 && x.Status != f.code || f.class != 0 && x.Status/100 != f.class {
		return false
	}
	switch {
	case f.Flag == "-":
		return x.Flags() == 0
	case f.flag != 0:
		return x.Flags()&f.flag != 0
	}
	return true
}

// Event is one finished exchange as a watcher sees it.
type Event struct {
	Time            time.Time   `json:"time"`
	Direction       string      `json:"direction"`
	Port            uint16      `json:"port"`
	Method          string      `json:"method"`
	Authority       string      `json:"authority"`
	Path            string      `json:"path"`
	Status          int         `json:"status"`
	Flags           string      `json:"flags"`
	DurationMs      float64     `json:"duration_ms"`
	RequestID       string      `json:"request_id,omitempty"`
	Peer            string      `json:"peer"`
	RequestHeaders  [][2]string `json:"request_headers"`
	ResponseHeaders [][2]string `json:"response_headers"`
}

type watcher struct {
	filter  Filter
	budget  atomic.Int64 // events left this second
	skipped atomic.Int64
	events  chan *Event
}

// Name is the decoration's name; the tap has no config of its own.
func (t *Tap) Name() string { return "tap" }

// Done hands x to the watchers whose filters match it, within their budgets.
// It never blocks: a watcher that is behind skips the event.
func (t *Tap) Done(x *exchange.Exchange) {
	ws := t.watchers.Load()
	if ws == nil {
		return
	}
	var ev *Event
	for _, w := range *ws {
		if !w.filter.match(x) {
			continue
		}
		if w.budget.Add(-1) < 0 {
			w.skipped.Add(1)
			continue
		}
		if ev == nil {
			ev = eventOf(x)
		}
		select {
		case w.events <- ev:
		default:
			w.skipped.Add(1)
		}
	}
}

// eventOf copies what a watcher sees of x: its strings are views into
// buffers the connection reuses.
func eventOf(x *exchange.Exchange) *Event {
	return &Event{
		Time:            x.Start,
		Direction:       x.Direction,
		Port:            x.Port,
		Method:          strings.Clone(x.Method),
		Authority:       strings.Clone(x.Host),
		Path:            strings.Clone(x.Path),
		Status:          x.Status,
		Flags:           x.Flags().String(),
		DurationMs:      float64(time.Since(x.Start).Microseconds()) / 1000,
		RequestID:       strings.Clone(x.RequestID),
		Peer:            x.Client.String(),
		RequestHeaders:  fields(x.Request),
		ResponseHeaders: fields(x.Response),
	}
}

// fields are h's fields as name and value pairs, credentials redacted.
func fields(h exchange.Header) [][2]string {
	var out [][2]string
	add := func(name, value string) bool {
		if slices.ContainsFunc(Redacted, func(r string) bool { return strings.EqualFold(r, name) }) {
			value = RedactedValue
		}
		out = append(out, [2]string{strings.Clone(name), strings.Clone(value)})
		return true
	}
	switch h := h.(type) {
	case interface {
		Range(func(name, value string) bool)
	}: // the event loop's http1.Header
		h.Range(add)
	case http.Header:
		for _, name := range slices.Sorted(maps.Keys(h)) {
			for _, v := range h[name] {
				add(name, v)
			}
		}
	}
	return out
}

// watch adds a watcher with filter f until stop is called (its budget is
// refilled each second by ServeHTTP). It fails past MaxWatchers.
func (t *Tap) watch(f Filter) (*watcher, func(), error) {
	w := &watcher{filter: f, events: make(chan *Event, queued)}
	w.budget.Store(PerSecond)
	t.mu.Lock()
	defer t.mu.Unlock()
	var ws []*watcher
	if p := t.watchers.Load(); p != nil {
		ws = *p
	}
	if len(ws) >= MaxWatchers {
		return nil, nil, fmt.Errorf("%d watchers already; try again later", len(ws))
	}
	ws = append(slices.Clip(ws), w)
	t.watchers.Store(&ws)
	stop := func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		ws := slices.DeleteFunc(slices.Clone(*t.watchers.Load()), func(o *watcher) bool { return o == w })
		if len(ws) == 0 {
			t.watchers.Store(nil) // nobody watches: Done is one load again
			return
		}
		t.watchers.Store(&ws)
	}
	return w, stop, nil
}

// watching is how many watchers there are.
func (t *Tap) watching() int {
	if p := t.watchers.Load(); p != nil {
		return len(*p)
	}
	return 0
}

// Status is sent to a watcher each second: what it missed in that second.
type Status struct {
	Skipped int64 `json:"skipped"`
}

// ServeHTTP streams the events as Server-Sent Events ("request", with an
// Event, and each second "status", with a Status) until the client goes.
func (t *Tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.Query())
	if err != nil {
		http.Error(w, "tap: "+err.Error(), http.StatusBadRequest)
		return
	}
	wt, stop, err := t.watch(f)
	if err != nil {
		http.Error(w, "tap: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer stop()
	events := sse.Start(w)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-wt.events:
			if events.Send("request", ev) != nil {
				return
			}
		case <-tick.C:
			wt.budget.Store(PerSecond)
			if events.Send("status", Status{Skipped: wt.skipped.Swap(0)}) != nil {
				return
			}
		}
	}
}
