//go:build fleetagent

package cli

import "github.com/spf13/cobra"

// packagingCommands is empty in the agent that ulpfleet uploads to hosts
// (make builds it with -tags fleetagent): hosts apply, revert and report
// livepatches, they never build or package them, and ulp build and ulp deb
// with their dependencies (the compiler drivers, goreleaser/nfpm) are more
// than half of ulp's size, sent to every host on its first rollout.
func packagingCommands(*globalOptions) []*cobra.Command { return nil }
