// Command fastapp is the benchmarks' fast app: every path answers 1 KiB,
// and /big?size=N streams N bytes. (The other app is the seed's Python
// server.)
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
)

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

func main() {
	addr := flag.String("listen", ":8080", "address")
	flag.Parse()
	body := make([]byte, 1024)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			n, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			io.Copy(w, io.LimitReader(zeros{}, n))
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})))
}
