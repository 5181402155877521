package logsink

import (
	"io"
	"os"
	"testing"
	"time"
)

// BenchmarkLineToPipe writes one access log line to a pipe that another
// goroutine drains, as a container runtime drains a container's stdout:
// straight (a write(2) per line) and through a Sink as the agent's access
// log has it.
func BenchmarkLineToPipe(b *testing.B) {
	line := []byte(`{"start_time":"2026-11-25T14:29:51.123Z","method":"GET","path":"/","protocol":"HTTP/1.1","status":200,"response_flags":"-","bytes_received":0,"bytes_sent":1024,"duration_ms":0.4,"upstream_service_time_ms":0.3,"x_forwarded_for":"","user_agent":"wrk","request_id":"8c1f7a3e-5b2d-4c9a-9f0e-2d6b1a4c7e55","authority":"10.213.0.2:8080","upstream_host":"10.213.0.2:8080","client_address":"10.213.0.1:52696","direction":"inbound"}` + "\n")
	for _, buffered := range []bool{false, true} {
		name := "direct"
		if buffered {
			name = "sink"
		}
		b.Run(name, func(b *testing.B) {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			drained := make(chan struct{})
			go func() { io.Copy(io.Discard, r); close(drained) }()
			var out io.Writer = w
			var sink *Sink
			if buffered {
				sink = NewWith(w, Options{Gather: time.Second, Limit: 4 << 20})
				out = sink
			}
			for b.Loop() {
				out.Write(line)
			}
			if sink != nil {
				sink.Close()
			}
			w.Close()
			<-drained
			r.Close()
		})
	}
}
