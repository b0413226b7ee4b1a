//go:build fleetagent

package cli

import "github.com/spf13/cobra"

// packagingCommands is empty in the agent that ulpfleet uploads to hosts
// (make builds it with -tags fleetagent): hosts apply, revert and report
// livepatches, they never build or package them, so ulp build and ulp deb
// (about a megabyte of ulp) are not sent to every host on its first
// rollout.
func packagingCommands(*globalOptions) []*cobra.Command { return nil }
