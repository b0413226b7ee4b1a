// Command ulpfleet rolls livepatches out to a fleet of hosts over SSH. See
// docs/fleet.md.
package main

import (
	"os"

	"ulp/fleet/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:]))
}
