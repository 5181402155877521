package proxy

import (
	"fmt"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// dumpConns says where each of the server's connections stands, for a
// test that failed waiting on one.
func dumpConns(s *Server) string {
	out := make(chan string)
	l := s.cfg.Loops[0]
	l.Post(func() {
		str := ""
		l.Each(func(h loop.Handler) {
			if c, ok := h.(*conn); ok {
				str += fmt.Sprintf("conn at=%d client=%+v app=%+v up=%+v down=%+v\n", c.at, c.client, c.app, c.up, c.down)
			}
		})
		out <- str
	})
	return <-out
}
