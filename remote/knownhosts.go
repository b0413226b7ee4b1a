package remote

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// knownKey is one key of a known_hosts line.
type knownKey struct {
	Key  ssh.PublicKey
	File string
	Line int
}

// knownIndex is the parsed content of a set of known_hosts files, built
// once and then shared by every Dial: a lookup is a map access for plain
// host names, a scan of the (few) lines with wildcards or negations, and
// one precomputed HMAC-SHA1 per hashed entry; each name's result is kept,
// so a host is matched once however often it is looked up.
type knownIndex struct {
	hosts, cas patternIndex
	// revoked holds the wire form of every @revoked key.
	revoked map[string]bool

	mu   sync.Mutex
	memo map[string]knownMatch
}

// knownMatch is what known_hosts says about one host name.
type knownMatch struct {
	keys []knownKey // plain keys of the host
	cas  []knownKey // @cert-authority keys that may sign its certificate
}

// patternIndex maps host names to keys, by the kind of pattern that
// names them.
type patternIndex struct {
	exact  map[string][]knownKey
	globs  []globLine
	hashed []hashedEntry
}

// globLine is a line whose patterns have wildcards or negations: it names
// a host when one pattern matches and no negated pattern does.
type globLine struct {
	patterns []string
	key      knownKey
}

// hashedEntry is a "|1|salt|hash" pattern (ssh-keygen -H): HMAC-SHA1 of
// the name keyed with salt. inner and outer are the HMAC's hash states
// after its key blocks, so that a match costs two SHA-1 blocks.
type hashedEntry struct {
	inner, outer []byte
	sum          [sha1.Size]byte
	negated      bool
	key          knownKey
}

// parseKnownHosts reads files into one index. A line that does not parse
// is an error naming its file and line, as a file that cannot be read.
func parseKnownHosts(files []string) (*knownIndex, error) {
	ix := &knownIndex{hosts: newPatternIndex(), cas: newPatternIndex(), revoked: map[string]bool{}, memo: map[string]knownMatch{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read known_hosts: %w", err)
		}
		if err := ix.add(f, data); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

func newPatternIndex() patternIndex { return patternIndex{exact: map[string][]knownKey{}} }

// add indexes the lines of one file.
func (ix *knownIndex) add(file string, data []byte) error {
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		marker, patterns, key, _, _, err := ssh.ParseKnownHosts(line)
		if errors.Is(err, io.EOF) {
			continue // blank or comment
		}
		if err != nil {
			return fmt.Errorf("read known_hosts: %s:%d: %w", file, n, err)
		}
		kk := knownKey{Key: key, File: file, Line: n}
		switch marker {
		case "":
			err = ix.hosts.add(patterns, kk)
		case "cert-authority":
			err = ix.cas.add(patterns, kk)
		case "revoked":
			ix.revoked[string(key.Marshal())] = true
		default:
			err = fmt.Errorf("unknown marker @%s", marker)
		}
		if err != nil {
			return fmt.Errorf("read known_hosts: %s:%d: %w", file, n, err)
		}
	}
	return nil
}

func (pi *patternIndex) add(patterns []string, kk knownKey) error {
	glob := false
	for _, p := range patterns {
		if strings.HasPrefix(p, "|") {
			h, err := newHashedEntry(p, kk)
			if err != nil {
				return err
			}
			pi.hashed = append(pi.hashed, h)
			continue
		}
		if strings.ContainsAny(p, "*?!") {
			glob = true
		}
	}
	if glob {
		var ps []string
		for _, p := range patterns {
			if !strings.HasPrefix(p, "|") {
				ps = append(ps, strings.ToLower(p))
			}
		}
		pi.globs = append(pi.globs, globLine{patterns: ps, key: kk})
		return nil
	}
	for _, p := range patterns {
		if !strings.HasPrefix(p, "|") {
			p = strings.ToLower(p)
			pi.exact[p] = append(pi.exact[p], kk)
		}
	}
	return nil
}

// newHashedEntry parses "|1|base64(salt)|base64(hmac)", optionally negated.
func newHashedEntry(p string, kk knownKey) (hashedEntry, error) {
	h := hashedEntry{key: kk}
	if strings.HasPrefix(p, "!") {
		h.negated, p = true, p[1:]
	}
	parts := strings.Split(p, "|")
	if len(parts) != 4 || parts[0] != "" || parts[1] != "1" {
		return h, fmt.Errorf("hashed host %q: want |1|salt|hash", p)
	}
	salt, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return h, fmt.Errorf("hashed host %q: salt: %w", p, err)
	}
	sum, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(sum) != sha1.Size {
		return h, fmt.Errorf("hashed host %q: hash is not %d bytes of base64", p, sha1.Size)
	}
	copy(h.sum[:], sum)
	// HMAC's key blocks, hashed once here (RFC 2104): a key longer than
	// the block is hashed first.
	if len(salt) > sha1.BlockSize {
		s := sha1.Sum(salt)
		salt = s[:]
	}
	pad := make([]byte, sha1.BlockSize)
	state := func(x byte) []byte {
		for i := range pad {
			pad[i] = x
			if i < len(salt) {
				pad[i] ^= salt[i]
			}
		}
		d := sha1.New()
		d.Write(pad)
		b, _ := d.(encoding.BinaryMarshaler).MarshalBinary()
		return b
	}
	h.inner, h.outer = state(0x36), state(0x5c)
	return h, nil
}

// hmacState computes hashed entries' HMACs with two reusable hashes.
type hmacState struct {
	in, out hash.Hash
	buf     [sha1.Size]byte
}

func newHMACState() *hmacState { return &hmacState{in: sha1.New(), out: sha1.New()} }

// matches reports whether h hashes name.
func (s *hmacState) matches(h *hashedEntry, name []byte) bool {
	if s.in.(encoding.BinaryUnmarshaler).UnmarshalBinary(h.inner) != nil ||
		s.out.(encoding.BinaryUnmarshaler).UnmarshalBinary(h.outer) != nil {
		return false
	}
	s.in.Write(name)
	s.out.Write(s.in.Sum(s.buf[:0]))
	return hmac.Equal(s.out.Sum(s.buf[:0]), h.sum[:])
}

// lookup returns the keys of pi that name (a normalized known_hosts name:
// "host", or "[host]:port" when the port is not 22) matches.
func (pi *patternIndex) lookup(name string, s *hmacState) []knownKey {
	keys := append([]knownKey(nil), pi.exact[name]...)
	for i := range pi.globs {
		g := &pi.globs[i]
		hit := false
		for _, p := range g.patterns {
			if neg, ok := strings.CutPrefix(p, "!"); ok {
				if globMatch(neg, name) {
					hit = false
					break
				}
			} else if globMatch(p, name) {
				hit = true
			}
		}
		if hit {
			keys = append(keys, g.key)
		}
	}
	if len(pi.hashed) > 0 {
		b := []byte(name)
		for i := range pi.hashed {
			h := &pi.hashed[i]
			if !h.negated && s.matches(h, b) {
				keys = append(keys, h.key)
			}
		}
	}
	return keys
}

// match returns what the index says about name (lowercased, normalized),
// computed once per name.
func (ix *knownIndex) match(name string) knownMatch {
	ix.mu.Lock()
	m, ok := ix.memo[name]
	ix.mu.Unlock()
	if ok {
		return m
	}
	s := newHMACState()
	m = knownMatch{keys: ix.hosts.lookup(name, s), cas: ix.cas.lookup(name, s)}
	ix.mu.Lock()
	ix.memo[name] = m
	ix.mu.Unlock()
	return m
}

// learn adds a key accepted on first use for name. The patterns stay as
// parsed (lookups read them without a lock): the memo has name's match,
// which the check before the append computed.
func (ix *knownIndex) learn(name string, kk knownKey) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	m := ix.memo[name]
	m.keys = append(append([]knownKey(nil), m.keys...), kk)
	ix.memo[name] = m
}

// isRevoked reports whether key is marked @revoked.
func (ix *knownIndex) isRevoked(key ssh.PublicKey) bool { return ix.revoked[string(key.Marshal())] }

// globMatch matches name against an OpenSSH host pattern: '*' matches any
// run of characters, '?' one character; nothing else is special.
func globMatch(pattern, name string) bool {
	px, nx := 0, 0
	nextPx, nextNx := 0, 0
	for px < len(pattern) || nx < len(name) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextNx = px, nx+1
				px++
				continue
			case '?':
				if nx < len(name) {
					px++
					nx++
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if 0 < nextNx && nextNx <= len(name) {
			px, nx = nextPx, nextNx
			continue
		}
		return false
	}
	return true
}
