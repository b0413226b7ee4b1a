package sign

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// DefaultTrustDir is the folder of trusted public keys used when no other
// is named.
const DefaultTrustDir = "/etc/ulp/trusted.d"

// maxKeyFile bounds a key file read from disk.
const maxKeyFile = 64 << 10

// ErrUnsafeFile means a file or folder that the trust decision depends on
// could be changed by someone other than root or the agent's user.
var ErrUnsafeFile = errors.New("unsafe file")

// Policy is a set of trusted public keys, read from a folder.
type Policy struct {
	Dir  string
	keys map[string]ed25519.PublicKey // fingerprint -> key
	file map[string]string            // fingerprint -> file name
}

// LoadPolicy reads every *.pub file of dir (PEM "PUBLIC KEY", one key per
// file). The folder and the files must be owned by root or the caller's
// effective user and not writable by group or others (CheckSafe); any
// unreadable, unsafe or invalid key file is an error, so a broken policy
// never silently trusts less or more. A folder without keys is a valid
// policy that refuses every container. A missing folder is an error that
// wraps fs.ErrNotExist.
func LoadPolicy(dir string) (*Policy, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("trust policy: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("trust policy: %s is not a folder", dir)
	}
	if err := CheckSafe(fi); err != nil {
		return nil, fmt.Errorf("trust policy: %s: %w", dir, err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, fmt.Errorf("trust policy: %w", err)
	}
	sort.Strings(names)
	p := &Policy{Dir: dir, keys: make(map[string]ed25519.PublicKey), file: make(map[string]string)}
	for _, name := range names {
		key, err := readKeyFile(name)
		if err != nil {
			return nil, fmt.Errorf("trust policy: %s: %w", name, err)
		}
		fp := Fingerprint(key)
		if _, dup := p.keys[fp]; !dup {
			p.keys[fp], p.file[fp] = key, filepath.Base(name)
		}
	}
	return p, nil
}

func readKeyFile(name string) (ed25519.PublicKey, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrUnsafeFile)
	}
	if err := CheckSafe(fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrKeyFormat, maxKeyFile)
	}
	return ParsePublicKey(b)
}

// NewPolicy returns a policy trusting keys, named name in its messages.
func NewPolicy(name string, keys ...ed25519.PublicKey) *Policy {
	p := &Policy{Dir: name, keys: make(map[string]ed25519.PublicKey), file: make(map[string]string)}
	for _, k := range keys {
		fp := Fingerprint(k)
		p.keys[fp], p.file[fp] = k, fp
	}
	return p
}

// Len returns the number of trusted keys.
func (p *Policy) Len() int { return len(p.keys) }

// Verify checks that the container r (size bytes) carries a valid
// signature by one of the trusted keys, and returns the name of that key's
// file (its fingerprint for a NewPolicy). Errors wrap ErrUnsigned,
// ErrBadSignature, ErrUntrusted or a *FormatError.
func (p *Policy) Verify(r io.ReaderAt, size int64) (string, error) {
	s, err := Check(r, size)
	if err != nil {
		return "", err
	}
	fp := Fingerprint(s.Key)
	if k, ok := p.keys[fp]; ok && bytes.Equal(k, s.Key) {
		return p.file[fp], nil
	}
	return "", fmt.Errorf("%w: key %s is not in %s", ErrUntrusted, fp, p.Dir)
}

// CheckSafe reports, as an ErrUnsafeFile, a file or folder that is owned by
// someone other than root or the caller's effective user, or that group or
// others may write.
func CheckSafe(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%w: no owner information", ErrUnsafeFile)
	}
	if st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: owned by uid %d (must be root or uid %d)", ErrUnsafeFile, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: writable by group or others (mode %#o)", ErrUnsafeFile, fi.Mode().Perm())
	}
	return nil
}
