package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"ulp/livepatch/sign"
)

func newKeygenCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen [NAME]",
		Short: "Create an Ed25519 key pair for signing livepatch containers",
		Long: `keygen creates a new Ed25519 key pair: NAME.key, the private key (PEM PKCS#8,
mode 0600), and NAME.pub, the public key (PEM PKIX). NAME defaults to "ulp".
Existing files are never overwritten. Sign containers with
"ulp sign --key NAME.key FILE"; trust the key on a host by copying NAME.pub
into /etc/ulp/trusted.d/. openssl reads and writes the same formats
("openssl genpkey -algorithm ed25519").`,
		Args: usageMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "ulp"
			if len(args) == 1 {
				name = args[0]
			}
			return runKeygen(g, name, cmd.OutOrStdout())
		},
	}
}

func runKeygen(g *globalOptions, name string, stdout io.Writer) error {
	pub, priv, err := sign.GenerateKey()
	if err != nil {
		return err
	}
	kb, err := sign.MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	pb, err := sign.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	keyFile, pubFile := name+".key", name+".pub"
	for _, f := range []string{keyFile, pubFile} {
		if _, err := os.Lstat(f); err == nil {
			return usageError(fmt.Errorf("%s already exists", f))
		}
	}
	if err := writeNew(keyFile, kb, 0o600); err != nil {
		return err
	}
	if err := writeNew(pubFile, pb, 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	if !g.quiet {
		fmt.Fprintf(stdout, "wrote %s (private, keep it secret) and %s (%s)\n", keyFile, pubFile, sign.Fingerprint(pub))
	}
	return nil
}

// writeNew creates path, which must not exist, with data and mode perm.
func writeNew(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return usageError(err)
		}
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}
