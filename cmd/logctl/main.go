// Command logctl manages the pipeline's etcd state: collect configs
// validated with the agent's own parser before they are written.
package main

import (
	"os"

	"github.com/logpipe/logpipe/internal/ctl"
)

func main() {
	os.Exit(ctl.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
