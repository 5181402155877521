// Package envflag lets every flag of a command also be set from the
// environment, as pod specs prefer: --inbound-ports is also
// $VENEER_INBOUND_PORTS. A flag given on the command line wins.
//
//	fs := flag.NewFlagSet("veneer-init", flag.ContinueOnError)
//	ports := fs.String("inbound-ports", "8080", "...")
//	err := envflag.Parse(fs, "VENEER_", os.Args[1:])
package envflag

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Name is the environment variable for flag name: prefix, then the name in
// upper case with dashes as underscores.
func Name(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then sets each flag that args did not set from
// its environment variable, when that is set.
func Parse(fs *flag.FlagSet, prefix string, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := Name(prefix, f.Name)
		v, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("$%s: %q is not a valid value for --%s: %v", env, v, f.Name, e)
		}
	})
	return err
}
