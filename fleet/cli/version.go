package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"ulp/agentbin"
)

// Revision is the git commit ulpfleet was built from, 12 hex digits: make
// sets it (-X ulp/fleet/cli.Revision=...); a go build falls back to the
// build info's vcs.revision, when the go command stamped one.
var Revision string

// revisionDigits is how many hex digits of the commit `ulpfleet version`
// prints (docs/fleet.md says so).
const revisionDigits = 12

func newVersionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ulpfleet's build and the embedded agent's version and sha256",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rev, goVersion := Revision, "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && rev == "" {
						rev = s.Value
					}
				}
			}
			if rev == "" {
				rev = "unknown"
			}
			if len(rev) > revisionDigits {
				rev = rev[:revisionDigits]
			}
			fmt.Fprintf(a.stdout, "ulpfleet: revision %s, %s\n", rev, goVersion)
			info, err := agentbin.Describe()
			if err != nil {
				fmt.Fprintf(a.stdout, "agent: none embedded (%v)\n", err)
				return nil
			}
			fmt.Fprintf(a.stdout, "agent: %s, sha256 %s, %d bytes, %s\n", info.Version, info.SHA256, info.Size, info.GoVersion)
			return nil
		},
	}
}
