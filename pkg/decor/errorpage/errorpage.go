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

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// Key is the block's key in an http section.
const Key = "errorPages"

// Block is the kind of the block.
var Block = config.BlockOf[Config](Key)

// Config replaces the app's responses by status with a file's content.
type Config struct {
	// Pages maps a status ("404") or a class ("5xx") to a file. An exact
	// status wins over its class. Empty: nothing is replaced.
	Pages map[string]string `yaml:"pages" json:"pages"`
}

func (c *Config) Provision() error {
	for k, file := range c.Pages {
		if !statusKey(k) {
			return config.Errorf("pages", "%q is not a status (404) or a class (5xx)", k)
		}
		if file == "" {
			return config.Errorf("pages."+k, "no file named")
		}
	}
	return nil
}

func statusKey(k string) bool {
	if len(k) == 3 && k[0] >= '1' && k[0] <= '5' && k[1:] == "xx" {
		return true
	}
	n, err := strconv.Atoi(k)
	return err == nil && n >= 100 && n <= 599
}

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
func New(cfg Config) (*Pages, error) {
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

// Name is the config key.
func (p *Pages) Name() string { return Key }

// Response puts the page for the response's status in the place of the
// app's body.
func (p *Pages) Response(x *exchange.Exchange) {
	if x.Status < 200 {
		return
	}
	if pg, ok := p.find(x.Status); ok {
		x.Replace(pg.contentType, pg.body)
	}
}
