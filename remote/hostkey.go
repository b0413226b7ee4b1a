package remote

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks server keys against known_hosts files.
type hostKeys struct {
	files  []string
	policy HostKeyPolicy
	db     *knownIndex
}

// appendMu serialises appends to known_hosts files within this process;
// each append is also a single O_APPEND write, so lines never interleave.
var appendMu sync.Mutex

func newHostKeys(files []string, policy HostKeyPolicy) (*hostKeys, error) {
	if len(files) == 0 {
		return nil, errors.New("no known_hosts file configured")
	}
	if policy == AcceptNew {
		// Accept-new may start with no file: create it for the appends.
		f, err := os.OpenFile(files[0], os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open known_hosts: %w", err)
		}
		f.Close()
	}
	// A missing file is an empty one, as for OpenSSH.
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil || !errors.Is(err, os.ErrNotExist) {
			existing = append(existing, f)
		}
	}
	db, err := loadKnownHosts(existing)
	if err != nil {
		return nil, err
	}
	return &hostKeys{files: files, policy: policy, db: db}, nil
}

// knownHostsCache keeps each parsed set of known_hosts files while none of
// them changes (size, mtime, inode), so that a fleet of Dials parses a
// large file once.
var knownHostsCache struct {
	sync.Mutex
	m map[string]cachedKnownHosts
}

type cachedKnownHosts struct {
	stamp string
	db    *knownIndex
}

// stampOf identifies the current content of files.
func stampOf(files []string) (string, error) {
	var stamp strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("read known_hosts: %w", err)
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(&stamp, "%d/%d/%d;", fi.Size(), fi.ModTime().UnixNano(), ino)
	}
	return stamp.String(), nil
}

func loadKnownHosts(files []string) (*knownIndex, error) {
	key := strings.Join(files, "\x00")
	stamp, err := stampOf(files)
	if err != nil {
		return nil, err
	}
	knownHostsCache.Lock()
	defer knownHostsCache.Unlock()
	if c, ok := knownHostsCache.m[key]; ok && c.stamp == stamp {
		return c.db, nil
	}
	db, err := parseKnownHosts(files)
	if err != nil {
		return nil, err
	}
	if knownHostsCache.m == nil {
		knownHostsCache.m = map[string]cachedKnownHosts{}
	}
	knownHostsCache.m[key] = cachedKnownHosts{stamp: stamp, db: db}
	return db, nil
}

// certAlgos are the host certificate algorithms, offered first for a host
// that a @cert-authority line covers.
var certAlgos = []string{ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01,
	ssh.CertAlgoECDSA521v01, ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01}

// algorithms returns the host-key algorithms to offer for name: with a
// certificate authority for it, certificates first; then the types of the
// keys known for it, so that the server presents a key that known_hosts can
// confirm (x/crypto does not reorder by known keys the way OpenSSH does;
// golang/go#29286). Nil means the library default.
func (h *hostKeys) algorithms(name string) []string {
	m := h.db.match(knownhosts.Normalize(name))
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, s := range a {
			if !seen[s] {
				seen[s] = true
				algos = append(algos, s)
			}
		}
	}
	if len(m.cas) > 0 {
		add(certAlgos...)
		if len(m.keys) == 0 {
			// No plain key known: a host without a certificate still gets
			// to present its key, to be refused as unknown.
			add(ssh.SupportedAlgorithms().HostKeys...)
		}
	}
	for _, k := range m.keys {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// callback returns the HostKeyCallback used for the handshake with name:
// a host certificate signed by a @cert-authority of name and valid for its
// host name passes; a plain key must be one that known_hosts lists for
// name. A @revoked key, or a certificate of or by one, never passes.
func (h *hostKeys) callback(name string) ssh.HostKeyCallback {
	norm := knownhosts.Normalize(name)
	plain := func(_ string, _ net.Addr, key ssh.PublicKey) error {
		if h.db.isRevoked(key) {
			return fmt.Errorf("host key %s %s is marked @revoked in known_hosts", key.Type(), ssh.FingerprintSHA256(key))
		}
		m := h.db.match(norm)
		var want []string
		for _, k := range m.keys {
			if bytes.Equal(k.Key.Marshal(), key.Marshal()) {
				return nil
			}
			want = append(want, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.File, k.Line))
		}
		got := ssh.FingerprintSHA256(key)
		switch {
		case len(want) > 0:
			return &HostKeyError{Host: norm, Got: got, Want: want, err: ErrHostKeyMismatch}
		case len(m.cas) > 0:
			// The host should present a certificate: a plain key is never
			// learnt for it.
			return &HostKeyError{Host: norm, Got: got + " (a plain key where known_hosts has a @cert-authority)", err: ErrHostKeyUnknown}
		case h.policy != AcceptNew:
			return &HostKeyError{Host: norm, Got: got, err: ErrHostKeyUnknown}
		}
		return h.appendKey(name, key)
	}
	cc := &ssh.CertChecker{
		IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
			if h.db.isRevoked(auth) {
				return false
			}
			for _, k := range h.db.match(norm).cas {
				if bytes.Equal(k.Key.Marshal(), auth.Marshal()) {
					return true
				}
			}
			return false
		},
		IsRevoked:       func(c *ssh.Certificate) bool { return h.db.isRevoked(c.Key) },
		HostKeyFallback: plain,
	}
	return func(addr string, remote net.Addr, key ssh.PublicKey) error {
		err := cc.CheckHostKey(addr, remote, key)
		if cert, ok := key.(*ssh.Certificate); ok && err != nil {
			return &HostKeyError{Host: norm, Got: fmt.Sprintf("certificate of %s signed by %s, refused: %v",
				ssh.FingerprintSHA256(cert.Key), ssh.FingerprintSHA256(cert.SignatureKey), err), err: ErrHostKeyUnknown}
		}
		return err
	}
}

func (h *hostKeys) appendKey(name string, key ssh.PublicKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(name)}, key) + "\n"
	appendMu.Lock()
	defer appendMu.Unlock()
	f, err := os.OpenFile(h.files[0], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("append to known_hosts: %w", err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("append to known_hosts: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("append to known_hosts: %w", err)
	}
	h.db.learn(knownhosts.Normalize(name), knownKey{Key: key, File: h.files[0]})
	h.restamp()
	return nil
}

// restamp records the files' stamp after an append for the cached index,
// which holds the appended key already, so that the next Dial does not
// parse the files again.
func (h *hostKeys) restamp() {
	knownHostsCache.Lock()
	defer knownHostsCache.Unlock()
	for k, c := range knownHostsCache.m {
		if c.db == h.db {
			if stamp, err := stampOf(strings.Split(k, "\x00")); err == nil {
				knownHostsCache.m[k] = cachedKnownHosts{stamp: stamp, db: c.db}
			}
		}
	}
}

// knownName lowercases the host part of hostport, as OpenSSH does before
// matching known_hosts.
func knownName(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return strings.ToLower(hostport)
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}
