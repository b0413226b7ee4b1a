// Command ulp is the live patching agent: it builds livepatch containers and
// applies them to running processes. See docs/cli.md.
package main

import (
	"os"

	"ulp/livepatch/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:]))
}
