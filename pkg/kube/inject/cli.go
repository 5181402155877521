package inject

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `usage:
  veneerctl inject   [-f FILE] [--init-image IMAGE] [--agent-image IMAGE] [--sidecar native|classic]
  veneerctl uninject [-f FILE]
Reads Kubernetes YAML from FILE (or standard input, or -f -) and writes it
back with veneer added or removed. Nothing is written if any document fails.`

// Main is the veneerctl command.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "inject" && args[0] != "uninject") {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("veneerctl "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "-", "the YAML to read; - for standard input")
	var o Options
	if args[0] == "inject" {
		fs.StringVar(&o.InitImage, "init-image", "veneer-init:dev", "the veneer-init image")
		fs.StringVar(&o.AgentImage, "agent-image", "veneer-agent:dev", "the veneer-agent image")
		fs.StringVar(&o.Sidecar, "sidecar", "native", "native (Kubernetes 1.29+) or classic, where a workload's annotation does not say")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (the input is -f FILE)", fs.Arg(0))
	}
	in, err := read(*file, stdin)
	if err != nil {
		return err
	}
	var out []byte
	if args[0] == "inject" {
		out, err = Inject(in, o)
	} else {
		out, err = Uninject(in)
	}
	if err != nil {
		name := *file
		if name == "-" {
			name = "standard input"
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	_, err = stdout.Write(out)
	return err
}

func read(file string, stdin io.Reader) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(file)
}
