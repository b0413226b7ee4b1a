package remote

import (
	"crypto/ed25519"
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
	db     ssh.HostKeyCallback
}

// appendMu serialises appends to known_hosts files within this process;
// each append is also a single O_APPEND write, so lines never interleave.
var appendMu sync.Mutex

func newHostKeys(files []string, policy HostKeyPolicy) (*hostKeys, error) {
	if len(files) == 0 {
		return nil, errors.New("no known_hosts file configured")
	}
	if policy == AcceptNew {
		// knownhosts.New needs the file to exist; accept-new may start empty.
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
// them changes, so that a fleet of Dials parses a large file once.
var knownHostsCache struct {
	sync.Mutex
	m map[string]cachedKnownHosts
}

type cachedKnownHosts struct {
	stamp string
	db    ssh.HostKeyCallback
}

func loadKnownHosts(files []string) (ssh.HostKeyCallback, error) {
	key := strings.Join(files, "\x00")
	var stamp strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("read known_hosts: %w", err)
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(&stamp, "%d/%d/%d;", fi.Size(), fi.ModTime().UnixNano(), ino)
	}
	knownHostsCache.Lock()
	defer knownHostsCache.Unlock()
	if c, ok := knownHostsCache.m[key]; ok && c.stamp == stamp.String() {
		return c.db, nil
	}
	db, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	if knownHostsCache.m == nil {
		knownHostsCache.m = map[string]cachedKnownHosts{}
	}
	knownHostsCache.m[key] = cachedKnownHosts{stamp: stamp.String(), db: db}
	return db, nil
}

// probeKey is a key no host has: presenting it to the known_hosts callback
// makes it list every key it knows for the host.
var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, _ := ed25519.GenerateKey(nil)
	k, _ := ssh.NewPublicKey(pub)
	return k
})

// known returns the keys known_hosts lists for hostport.
func (h *hostKeys) known(hostport string) []knownhosts.KnownKey {
	err := h.db(hostport, probeAddr(hostport), probeKey())
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		return ke.Want
	}
	return nil
}

// algorithms returns the host-key algorithms to offer for hostport: the
// types already known for it, so that the server presents a key that
// known_hosts can confirm (x/crypto does not reorder by known keys the way
// OpenSSH does; golang/go#29286). Nil means the library default.
func (h *hostKeys) algorithms(hostport string) []string {
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
	for _, k := range h.known(hostport) {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// callback returns the HostKeyCallback used for the handshake with name.
func (h *hostKeys) callback(name string) ssh.HostKeyCallback {
	return func(_ string, remote net.Addr, key ssh.PublicKey) error {
		err := h.db(name, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return err // revoked key or unreadable entry: never trust on first use
		}
		got := ssh.FingerprintSHA256(key)
		if len(ke.Want) > 0 {
			want := make([]string, len(ke.Want))
			for i, w := range ke.Want {
				want[i] = fmt.Sprintf("%s %s (%s:%d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Filename, w.Line)
			}
			return &HostKeyError{Host: knownhosts.Normalize(name), Got: got, Want: want, err: ErrHostKeyMismatch}
		}
		if h.policy != AcceptNew {
			return &HostKeyError{Host: knownhosts.Normalize(name), Got: got, err: ErrHostKeyUnknown}
		}
		return h.appendKey(name, key)
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
	return f.Close()
}

// probeAddr gives the known_hosts callback an address for hostport that
// adds no extra match (the callback also checks the remote IP).
func probeAddr(hostport string) net.Addr {
	host, port, _ := net.SplitHostPort(hostport)
	ip := net.ParseIP(host)
	if ip == nil {
		ip = net.IPv4zero
	}
	p := 0
	fmt.Sscanf(port, "%d", &p)
	return &net.TCPAddr{IP: ip, Port: p}
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
