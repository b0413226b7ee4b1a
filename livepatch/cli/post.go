package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"ulp/livepatch/packer"
)

func newPostCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "post FILE",
		Short: "Merge the two NOPs after each padded entry into one",
		Long: `post rewrites, in the library or executable FILE, the two 1-byte NOPs (90 90)
after every padded function entry into one 2-byte NOP (66 90), so that no
thread can ever be stopped between them. Run it once after linking; running
it again changes nothing. The file is replaced atomically.
Exit status 1 when FILE has no padded function.`,
		Args: usageExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPost(g, args[0], cmd.OutOrStdout())
		},
	}
}

func runPost(g *globalOptions, path string, stdout io.Writer) error {
	res, err := packer.Post(path)
	if err != nil {
		if errors.Is(err, packer.ErrInvalidInput) {
			return usageError(err)
		}
		return err // ErrNoPads, or writing failed: exit status 1
	}
	if !g.quiet {
		fmt.Fprintf(stdout, "%s: merged %d entries, %d already merged\n", path, res.Merged, res.Already)
	}
	return nil
}
