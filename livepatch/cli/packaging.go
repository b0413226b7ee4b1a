//go:build !fleetagent

package cli

import "github.com/spf13/cobra"

// packagingCommands are the commands that build and package livepatches
// (ulp build, ulp deb). The agent that ulpfleet uploads to hosts is built
// with -tags fleetagent, without them (see packaging_agent.go).
func packagingCommands(g *globalOptions) []*cobra.Command {
	return []*cobra.Command{newBuildCommand(g), newDebCommand(g)}
}
