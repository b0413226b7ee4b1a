package remotetest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Insecure returns a host-key callback that accepts any key. Only tests may
// use it; it exists here so that no production package needs
// ssh.InsecureIgnoreHostKey.
func Insecure() ssh.HostKeyCallback {
	return ssh.InsecureIgnoreHostKey() //nolint:gosec // test-only package
}

// WriteKey generates an ed25519 key, writes it in OpenSSH format to
// dir/name (mode 0600) and its public half to dir/name.pub, and returns
// the signer and the private key's path.
func WriteKey(t testing.TB, dir, name string) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".pub", ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	return s, p
}
