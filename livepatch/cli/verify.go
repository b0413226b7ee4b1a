package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"ulp/livepatch/container"
	"ulp/livepatch/report"
	"ulp/livepatch/sign"
)

type verifyOptions struct {
	pubs    []string
	trusted string
}

func newVerifyCommand(g *globalOptions) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify (--pub PUB ... | --trusted DIR) FILE",
		Short: "Check the signature of a livepatch container",
		Long: `verify checks that the livepatch container FILE carries a valid signature
(.ulp.sig) made by one of the public keys PUB (--pub, repeatable), or by one
of the keys of a trust policy folder (--trusted DIR, every DIR/*.pub, as
"ulp trigger" uses). It prints "FILE: good signature by KEY".
Exit status 0: good signature by a listed key; 1: not signed, the signature
does not match the bytes, or the key is not listed; 2: bad usage, unreadable
key or file.`,
		Args: usageExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(g, opts, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVar(&opts.pubs, "pub", nil, "a trusted public key file `PUB` (PEM); repeatable")
	cmd.Flags().StringVar(&opts.trusted, "trusted", "", "a trust policy folder `DIR` of *.pub files")
	return cmd
}

func runVerify(g *globalOptions, opts verifyOptions, path string, stdout io.Writer) error {
	var p *sign.Policy
	switch {
	case len(opts.pubs) > 0 && opts.trusted != "":
		return usageError(errors.New("--pub and --trusted are mutually exclusive"))
	case opts.trusted != "":
		var err error
		if p, err = sign.LoadPolicy(opts.trusted); err != nil {
			return usageError(err)
		}
	case len(opts.pubs) > 0:
		keys := make([]ed25519.PublicKey, 0, len(opts.pubs))
		for _, name := range opts.pubs {
			b, err := os.ReadFile(name)
			if err != nil {
				return usageError(err)
			}
			k, err := sign.ParsePublicKey(b)
			if err != nil {
				return usageError(fmt.Errorf("%s: %w", name, err))
			}
			keys = append(keys, k)
		}
		p = sign.NewPolicy("--pub", keys...)
	default:
		return usageError(errors.New("verify needs --pub PUB or --trusted DIR"))
	}
	f, fi, err := container.OpenFile(path)
	if err != nil {
		return usageError(err)
	}
	defer f.Close()
	by, err := p.Verify(f, fi.Size())
	if err != nil {
		return &ExitError{Code: report.ExitFailure, Err: fmt.Errorf("%s: %w", path, err)}
	}
	if !g.quiet {
		fmt.Fprintf(stdout, "%s: good signature by %s\n", path, by)
	}
	return nil
}

// trustPolicy loads the trust policy folder dir for trigger. A missing
// folder means no policy, unless the user named it (required).
func trustPolicy(g *globalOptions, dir string, required bool) (*sign.Policy, error) {
	if dir == "" {
		if required {
			return nil, usageError(errors.New("--trusted needs a folder"))
		}
		return nil, nil
	}
	p, err := sign.LoadPolicy(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !required:
		g.log.Debug("no trust policy", "dir", dir)
		return nil, nil
	case err != nil:
		return nil, usageError(err)
	}
	g.log.Debug("trust policy", "dir", dir, "keys", p.Len())
	return p, nil
}
