// Package errorpage replaces the app's responses by status with a page of
// the operator's, as the ambassador in the seed article's sequel does with
// its custom 404 page. The app's own body for that status is discarded.
//
//	errorPages:
//	  pages: {"404": /etc/veneer/404.html, "5xx": /etc/veneer/oops.html}
//
// Pages are read when the config is loaded; a missing file is a config error.
package errorpage

import (
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/veneermesh/veneer/pkg/config"
)

type page struct {
	body        []byte
	contentType string
}

// Pages is a compiled errorPages section.
type Pages struct {
	byStatus map[int]page
	byClass  map[int]page // 4 for 4xx
}

// New reads the pages cfg names.
func New(cfg config.ErrorPages) (*Pages, error) {
	p := &Pages{byStatus: map[int]page{}, byClass: map[int]page{}}
	for k, file := range cfg.Pages {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("errorPages.pages.%s: %w", k, err)
		}
		ct := mime.TypeByExtension(filepath.Ext(file))
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		pg := page{body: b, contentType: ct}
		if len(k) == 3 && k[1:] == "xx" {
			p.byClass[int(k[0]-'0')] = pg
			continue
		}
		n, _ := strconv.Atoi(k)
		p.byStatus[n] = pg
	}
	return p, nil
}

func (p *Pages) find(status int) (page, bool) {
	if pg, ok := p.byStatus[status]; ok {
		return pg, true
	}
	pg, ok := p.byClass[status/100]
	return pg, ok
}

func (p *Pages) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&writer{ResponseWriter: w, pages: p, head: r.Method == http.MethodHead}, r)
	})
}

// writer swaps the body of a response whose status has a page.
type writer struct {
	http.ResponseWriter
	pages    *Pages
	head     bool
	wrote    bool
	replaced bool
}

func (w *writer) WriteHeader(status int) {
	if w.wrote || status < 200 {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.wrote = true
	pg, ok := w.pages.find(status)
	if !ok {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.replaced = true
	h := w.Header()
	for _, k := range []string{"Content-Encoding", "Content-Length", "Content-Range", "Etag", "Last-Modified", "Transfer-Encoding"} {
		h.Del(k)
	}
	h.Set("Content-Type", pg.contentType)
	h.Set("Content-Length", strconv.Itoa(len(pg.body)))
	w.ResponseWriter.WriteHeader(status)
	if !w.head {
		w.ResponseWriter.Write(pg.body)
	}
}

func (w *writer) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(b), nil // the app's body, discarded
	}
	return w.ResponseWriter.Write(b)
}

func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *writer) Flush() {
	if !w.replaced {
		http.NewResponseController(w.ResponseWriter).Flush()
	}
}
