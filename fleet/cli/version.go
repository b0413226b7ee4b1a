package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"ulp/agentbin"
)

func newVersionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ulpfleet's build and the embedded agent's version and sha256",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rev, goVersion := "unknown", "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
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
