package cli

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"ulp/internal/atomicfile"
	"ulp/livepatch/container"
	"ulp/livepatch/sign"
)

type signOptions struct {
	key    string
	output string
}

func newSignCommand(g *globalOptions) *cobra.Command {
	var opts signOptions
	cmd := &cobra.Command{
		Use:   "sign --key KEY FILE [-o OUT]",
		Short: "Sign a livepatch container",
		Long: `sign adds to the livepatch container FILE a .ulp.sig section holding an
Ed25519 signature, made with the private key KEY (from "ulp keygen" or
"openssl genpkey -algorithm ed25519"; mode 0600), over the whole file. A signature
already present is replaced. The file is replaced atomically (or OUT is
written with -o). Sign after packing: any later change to the file, packing
included, invalidates the signature.`,
		Args: usageExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSign(g, opts, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.key, "key", "", "the private `KEY` file (PEM)")
	cmd.Flags().StringVarP(&opts.output, "output", "o", "", "write the signed container to `OUT` instead of over FILE")
	return cmd
}

func runSign(g *globalOptions, opts signOptions, path string, stdout io.Writer) error {
	if opts.key == "" {
		return usageError(fmt.Errorf("sign needs --key KEY"))
	}
	fi, err := os.Stat(opts.key)
	if err != nil {
		return usageError(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return usageError(fmt.Errorf("%s: private key readable or writable by group or others (mode %#o): chmod 600 %s", opts.key, fi.Mode().Perm(), opts.key))
	}
	kb, err := os.ReadFile(opts.key)
	if err != nil {
		return usageError(err)
	}
	key, err := sign.ParsePrivateKey(kb)
	if err != nil {
		return usageError(fmt.Errorf("%s: %w", opts.key, err))
	}
	f, _, err := container.OpenFile(path)
	if err != nil {
		return usageError(err)
	}
	in, err := io.ReadAll(io.LimitReader(f, container.MaxFile+1))
	f.Close()
	if err != nil {
		return usageError(err)
	}
	c, err := container.Read(bytes.NewReader(in))
	if err != nil {
		return usageError(fmt.Errorf("%s: %w", path, err))
	}
	out, err := sign.Sign(in, key)
	if err != nil {
		return usageError(fmt.Errorf("%s: %w", path, err))
	}
	if fi, err = os.Stat(path); err != nil {
		return err
	}
	dst := path
	if opts.output != "" {
		dst = opts.output
	}
	if err := atomicfile.Write(dst, fi.Mode().Perm(), func(w io.Writer) error {
		_, err := w.Write(out)
		return err
	}); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if !g.quiet {
		fmt.Fprintf(stdout, "signed %s: patch %s, key %s\n", dst, c.Apply.ID, sign.Fingerprint(key.Public().(ed25519.PublicKey)))
	}
	return nil
}
